"""The seller's Returns & Refunds dashboard: a static page and its files."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent.parent / "static"
# The dashboard page: no inline script or style, nothing from another origin.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter()


@router.get("/", include_in_schema=False)
async def dashboard() -> FileResponse:
    """The seller's Returns & Refunds dashboard (static page; it reads the API with the
    bearer token given as `?token=` or typed in)."""
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
