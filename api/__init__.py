"""HTTP layer: the FastAPI app factory, routes, dependencies and middleware."""
