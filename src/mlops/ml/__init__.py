"""Pure functions of the model lifecycle: build, train, evaluate, export. No ZenML, no MLflow."""
