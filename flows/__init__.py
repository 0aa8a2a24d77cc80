"""Prefect flows: the MAD-X pipeline, per-stage flows, `add_language`, and their deployments."""
