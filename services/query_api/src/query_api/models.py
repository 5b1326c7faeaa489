"""Response models: they make the OpenAPI document describe exactly what the API returns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.messages import RejectedEvent
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


class RejectionView(RejectedEvent):
    """An event that could not be applied, as the state machine recorded it."""

    model_config = ConfigDict(extra="ignore")

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> RejectionView:
        return cls.model_validate({k: v for k, v in doc.items() if k != "_id"})


class RejectionsPage(BaseModel):
    items: list[RejectionView]
    next_cursor: str | None = Field(
        description="pass as `cursor` to get the next page; null on the last page"
    )


class Label(BaseModel):
    key: str = Field(description='a canonical value (or "ALL"), as the API takes it')
    label: str = Field(description="what the seller sees")


class DashboardMeta(BaseModel):
    tabs: list[Label] = Field(description='the status tabs in display order, "ALL" first')
    reverse_types: list[Label]


class ErrorMessage(BaseModel):
    detail: str


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationFailure(BaseModel):
    """422: what was wrong, in one line (naming the valid values), and pydantic's details."""

    message: str
    detail: list[ValidationIssue]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    mongodb: bool
    indexes: bool
