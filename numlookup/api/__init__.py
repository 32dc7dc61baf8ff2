"""The HTTP edge: Starlette app, routes, auth, error mapping, OpenAPI."""
