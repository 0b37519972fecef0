"""Thin ZenML steps over ``mlops.data``, ``mlops.ml`` and ``mlops.registry``, grouped by stage."""
