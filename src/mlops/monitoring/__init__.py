"""Drift monitoring: Evidently reports over the model's features (``drift``) and their history (``store``).

``store`` never imports Evidently, so the inference service can read the latest scores cheaply.
"""
