"""End-to-end MLOps reference: ZenML pipelines, MLflow registry, FastAPI serving, governance."""

__version__ = "0.1.0"
