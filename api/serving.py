"""The app as `support-pin serve` runs it, in each worker process."""

from __future__ import annotations

import gc

from fastapi import FastAPI
from sse_starlette.sse import AppStatus

from api.app import create_app

# Requests make short-lived objects, so the collector's passes over the long-lived start-up
# objects (frozen below) and frequent young collections are wasted work.
GC_GENERATION0_THRESHOLD = 20_000


def create_served_app() -> FastAPI:
    app = create_app()
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GENERATION0_THRESHOLD, gen1, gen2)
    return app


def close_streams() -> None:
    """End every open event stream of this process (the server is shutting down):
    sse-starlette's documented switch, which it watches itself only under uvicorn."""
    AppStatus.should_exit = True
