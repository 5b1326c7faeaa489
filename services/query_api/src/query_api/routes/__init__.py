"""One router per resource; `query_api.api.create_app` includes them in this order."""

from __future__ import annotations

from fastapi import APIRouter

from query_api.routes import dashboard, meta, rejections, returns

ROUTERS: tuple[APIRouter, ...] = (returns.router, rejections.router, meta.router, dashboard.router)
