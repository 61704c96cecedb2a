"""Support PIN service: domain logic and persistence (no HTTP here)."""
