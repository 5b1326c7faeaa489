"""Dependencies and parameter types the routes share: the repository, ids and paging."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Query, Request

from query_api import queries
from query_api.repository import ReturnsRepository

C = TypeVar("C")

# Ids and search text: any printable text, compared as a plain value (never an operator). Control
# characters are refused: PostgreSQL (under FerretDB) cannot hold a NUL in a string.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]+$"


def text_query(description: str | None = None) -> Any:
    """A query parameter holding an id or search text (see TEXT_PATTERN)."""
    return Query(min_length=1, max_length=128, pattern=TEXT_PATTERN, description=description)


Id = Annotated[str | None, text_query()]
Limit = Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)]
CursorToken = Annotated[
    str | None,
    Query(max_length=queries.MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page"),
]


def get_repository(request: Request) -> ReturnsRepository:
    repository: ReturnsRepository = request.app.state.repository
    return repository


Repo = Annotated[ReturnsRepository, Depends(get_repository)]


def cursor_or_400(decode: Callable[[str], C], token: str | None) -> C | None:
    """The position a `next_cursor` token names (None: the first page); 400 when it is not one."""
    try:
        return decode(token) if token is not None else None
    except queries.BadCursor as exc:
        raise HTTPException(status_code=400, detail=f"invalid cursor: {exc}") from exc

# What a router that opens its own resources passes to APIRouter(lifespan=...).
Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]
