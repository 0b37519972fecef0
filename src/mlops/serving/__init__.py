"""The FastAPI inference service. Never imports ZenML; imports MLflow only to load models."""
