"""Exception handlers: a readable 422 for invalid parameters, a 503 when MongoDB is away."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure

log = structlog.get_logger("query_api")


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One readable line, e.g. `status[0]: 'NOPE' is invalid. Input should be 'A', 'B' or 'C'`."""
    parts = []
    for error in errors:
        loc = list(error.get("loc", ()))
        if len(loc) > 1 and loc[0] in ("query", "path", "body", "header"):
            loc = loc[1:]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        got = f"{error['input']!r} is invalid. " if isinstance(error.get("input"), str) else ""
        parts.append(f"{where}: {got}{error.get('msg', 'invalid value')}")
    return "; ".join(parts)


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors())
    return JSONResponse(
        status_code=422,
        content={"message": validation_message(errors), "detail": errors},
    )


async def on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("mongodb_unavailable", path=request.url.path, error=str(exc))
    return JSONResponse(status_code=503, content={"detail": "the database is not reachable"})


def add_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(ConnectionFailure, on_database_unavailable)
