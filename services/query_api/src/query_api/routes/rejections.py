"""The events the state machine could not apply (its rejected topic), newest first."""

from __future__ import annotations

from fastapi import APIRouter

from contracts.messages import RejectionReason
from query_api import queries
from query_api.auth import Caller
from query_api.deps import CursorToken, Id, Limit, Repo, cursor_or_400
from query_api.models import RejectionsPage, RejectionView
from query_api.openapi import AUTH_ERRORS

router = APIRouter(prefix="/api/v1/rejections")


@router.get(
    "",
    response_model=RejectionsPage,
    responses=AUTH_ERRORS,
    summary="Events that could not be applied, newest first",
    description="What the state machine recorded from the rejected topic: unknown "
    "statuses, unsupported types, invalid transitions... Pages with `next_cursor`.",
)
async def list_rejections(
    repository: Repo,
    caller: Caller,
    *,
    shop_id: Id = None,
    reason: RejectionReason | None = None,
    limit: Limit = queries.DEFAULT_LIMIT,
    cursor: CursorToken = None,
) -> RejectionsPage:
    after = cursor_or_400(queries.decode_rejection_cursor, cursor)
    params = queries.RejectionParams(
        shop_id=caller.require(shop_id), reason=reason, limit=limit, after=after
    )
    docs, next_cursor = await repository.list_rejections(params)
    return RejectionsPage(
        items=[RejectionView.from_document(d) for d in docs], next_cursor=next_cursor
    )
