"""Prefect tasks: thin wrappers that call the domain packages and record everything in MLflow."""
