"""Drift monitoring: Evidently reports comparing recent inputs with the training reference, and their store.

``drift`` imports Evidently lazily (about 6 s); ``store`` never imports it, so the service can read the
latest result cheaply.
"""
