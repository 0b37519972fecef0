"""One ZenML pipeline per module."""
