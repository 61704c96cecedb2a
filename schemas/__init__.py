"""Pydantic request and response models of the public HTTP API (no logic here)."""
