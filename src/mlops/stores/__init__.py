"""SQL adapters: the project's own tables (``tables``), one engine factory (``engine``), Alembic
migrations (``migrate``, ``migrations/``) and a store per job: ``audit``, ``predictions``, ``drift``.

Imports only ``mlops.settings``, ``mlops.errors`` and ``mlops.spec`` from the project.
"""
