"""ASGI entrypoint: `uvicorn query_api.app:app` (settings from the environment)."""

from __future__ import annotations

from query_api.api import create_app

app = create_app()
