"""Response models: they make the OpenAPI document describe exactly what the API returns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from contracts.read_model import ReturnState


class ReturnView(ReturnState):
    """A return as stored in the read model, with its id and full history."""

    id: str = Field(description='"shop_id:return_id"')

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> ReturnView:
        """Build from a read-model document (its bookkeeping fields are ignored)."""
        return cls.model_validate({**doc, "id": doc["_id"]})


class ReturnsPage(BaseModel):
    items: list[ReturnView]
    next_cursor: str | None = Field(
        description="pass as `cursor` to get the next page; null on the last page"
    )


class StatusCounts(BaseModel):
    shop_id: str | None
    counts: dict[str, int] = Field(
        description='"ALL" and every canonical status (0 when there is none), in tab order'
    )


class ErrorMessage(BaseModel):
    detail: str


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    mongodb: bool
    indexes: bool
