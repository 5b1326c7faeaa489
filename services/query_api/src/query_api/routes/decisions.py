"""Acting on returns: a seller's decisions, TikTok's reject reasons, and "Needs action".

- `POST /api/v1/returns/{shop_id}/{return_id}/decisions` checks the token may act on the shop
  (403), that the decision fits the return's type and status (`contracts.decisions`; 409 naming
  the status otherwise), records the decision queued and publishes a `DecisionCommand` (key =
  the return) to DECISIONS_TOPIC; 202 with the decision once Kafka acknowledged it. An
  `Idempotency-Key` names the decision: the same key gives the same decision. The same decision
  while the return's latest one is pending gives that one (it reaches TikTok once).
- `GET /api/v1/decisions/{decision_id}`: the decision and its outcome.
- `GET /api/v1/returns/{shop_id}/{return_id}/reject-reasons`: TikTok's, in the request's
  Accept-Language (cached).
- `GET /api/v1/returns/needs-action`: returns waiting on the seller, soonest deadline first.

The status of a return changes only when TikTok reports it (webhook or sync), never here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID, uuid4

import structlog
from fastapi import APIRouter, FastAPI, Header, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymongo.errors import PyMongoError

from contracts.decisions import (
    REJECT_REASONS_COLLECTION,
    DecisionCommand,
    RejectReason,
    SellerDecision,
    allowed_decisions,
    decision_id_for_key,
)
from contracts.limits import MAX_NAME_LENGTH, MAX_TEXT_LENGTH
from contracts.messages import return_key
from contracts.read_model import ReturnState
from contracts.topics import DECISIONS_TOPIC
from query_api import deadlines
from query_api.auth import Caller
from query_api.deps import (
    TEXT_PATTERN,
    CursorToken,
    Id,
    Lifespan,
    Limit,
    Repo,
    cursor_or_400,
)
from query_api.models import DecisionView, ErrorMessage, ReturnView
from query_api.openapi import AUTH_ERRORS
from query_api.publisher import KafkaPublisher, KafkaUnavailable
from query_api.reject_reasons import RejectReasons, locale_of
from query_api.settings import Settings
from runtime.decision_store import DecisionPending, DecisionStore, KeyReused, Opened

log = structlog.get_logger("query_api.decisions")

PathId = Annotated[str, Path(min_length=1, max_length=128, pattern=TEXT_PATTERN)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "no such return"}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorMessage,
                  "description": "the decision does not fit the return's status (named), or "
                  "another decision of the return is pending"}}


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: SellerDecision
    reason: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH,
                               pattern=TEXT_PATTERN,
                               description="for reject: one of the return's reject reasons")
    comment: str | None = Field(default=None, max_length=MAX_TEXT_LENGTH)

    @model_validator(mode="after")
    def _reason_for_reject_only(self) -> DecisionRequest:
        if self.decision is SellerDecision.REJECT and self.reason is None:
            raise ValueError("reason is required to reject (GET .../reject-reasons lists them)")
        if self.decision is SellerDecision.APPROVE and self.reason is not None:
            raise ValueError("reason is only for reject")
        return self


class RejectReasonsView(BaseModel):
    locale: str
    reasons: list[RejectReason]
    cached: bool = Field(description="served from the cache rather than asked of TikTok")


class NeedsActionPage(BaseModel):
    items: list[ReturnView] = Field(description="soonest deadline first")
    next_cursor: str | None


def _store(request: Request) -> DecisionStore:
    store: DecisionStore = request.app.state.decisions
    return store


async def _state_of(repository: Repo, shop_id: str, return_id: str) -> ReturnState:
    doc = await repository.find_return(shop_id, return_id)
    if doc is None:
        raise HTTPException(404, f"return {return_id} of shop {shop_id} not found")
    return ReturnState.model_validate(doc)


def _unfit(state: ReturnState, decision: str) -> HTTPException:
    kind = state.reverse_type.value if state.reverse_type else "unknown type of"
    offered = ", ".join(allowed_decisions(state.reverse_type, state.status)) or "none"
    return HTTPException(409, f"cannot {decision} this return: its current status is "
                         f"{state.status.value} ({kind} request); decisions it offers: {offered}")


async def _open_and_publish(request: Request, store: DecisionStore,
                            command: DecisionCommand) -> Opened:
    """Record the decision as queued and, when it is new, publish its command (withdrawn again
    when Kafka does not take it); a known one is answered as it stands."""
    try:
        opened = await store.open(command)
    except KeyReused as exc:
        raise HTTPException(422, str(exc)) from exc
    except DecisionPending as exc:
        raise HTTPException(409, f"{exc}; it is not sent twice") from exc
    if opened.created:
        try:
            await request.app.state.decision_publisher.publish(
                command, DECISIONS_TOPIC, return_key(command.shop_id, command.return_id))
        except KafkaUnavailable as exc:
            log.warning("decision_publish_failed", error=str(exc))
            await store.withdraw(command.decision_id)
            raise HTTPException(503, "the event bus (Kafka) is not reachable; retry later"
                                ) from exc
        log.info("decision_requested", decision_id=str(command.decision_id),
                 shop_id=command.shop_id,
                 return_id=command.return_id, decision=command.decision.value,
                 label=command.label)
    return opened


def _lifespan(settings: Settings) -> Lifespan:
    """Opens the decisions' store, their publisher and the reject reasons' cache."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = app.state.mongo[settings.mongodb_database]
        store = DecisionStore(app.state.mongo, settings.mongodb_database)
        publisher = KafkaPublisher(settings.kafka_bootstrap_servers)
        reasons = RejectReasons(db[REJECT_REASONS_COLLECTION], settings)
        app.state.decisions, app.state.decision_publisher = store, publisher
        app.state.reject_reasons = reasons
        with contextlib.suppress(PyMongoError):  # queries work without; created again later
            await store.ensure_indexes()
        try:
            yield
        finally:
            await publisher.close()
            await reasons.aclose()

    return lifespan


def decisions_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["decisions"], lifespan=_lifespan(settings))

    @router.get("/returns/needs-action", response_model=NeedsActionPage, responses=AUTH_ERRORS,
                summary="Returns waiting on the seller, soonest TikTok deadline first")
    async def needs_action(
        repository: Repo, caller: Caller, *, shop_id: Id = None,
        due_before: Annotated[int | None, Query(ge=0, le=2**53, description=(
            "only deadlines before this (unix s); e.g. now + 86400 for the last 24 h"))] = None,
        limit: Limit = 50, cursor: CursorToken = None,
    ) -> NeedsActionPage:
        params = deadlines.NeedsActionParams(
            shop_id=caller.require(shop_id), due_before=due_before, limit=limit,
            after=cursor_or_400(deadlines.decode_deadline_cursor, cursor))
        docs, next_cursor = await repository.needs_action(params)
        return NeedsActionPage(items=[ReturnView.from_document(d) for d in docs],
                               next_cursor=next_cursor)

    @router.post("/returns/{shop_id}/{return_id}/decisions", status_code=202,
                 response_model=DecisionView,
                 responses={**AUTH_ERRORS, **NOT_FOUND, **CONFLICT},
                 summary="Approve or reject a return (carried out at TikTok by the ingestor)")
    async def decide(
        body: DecisionRequest, request: Request, repository: Repo, caller: Caller, *,
        shop_id: PathId, return_id: PathId,
        idempotency_key: Annotated[str | None, Header(
            alias="Idempotency-Key", min_length=1, max_length=128, pattern=TEXT_PATTERN,
            description="the same key gives the same decision")] = None,
    ) -> DecisionView:
        caller.require_act(shop_id)
        store = _store(request)
        decision_id = (decision_id_for_key(shop_id, return_id, idempotency_key)
                       if idempotency_key else uuid4())
        known = await store.get(decision_id) if idempotency_key else None
        if known is not None:  # a retry: the decision as first taken (checked in `open`)
            basis = (known.reverse_type, known.return_status, known.return_update_time)
        else:
            state = await _state_of(repository, shop_id, return_id)
            if state.reverse_type is None or body.decision not in allowed_decisions(
                    state.reverse_type, state.status):
                raise _unfit(state, body.decision.value)
            basis = (state.reverse_type, state.status, state.update_time)
        command = DecisionCommand(
            decision_id=decision_id, shop_id=shop_id, return_id=return_id,
            decision=body.decision, reverse_type=basis[0], status=basis[1],
            return_update_time=basis[2], reason=body.reason, comment=body.comment,
            label=caller.label)
        opened = await _open_and_publish(request, store, command)
        return DecisionView.of(opened.record)

    @router.get("/decisions/{decision_id}", response_model=DecisionView,
                responses={**AUTH_ERRORS, 404: {"model": ErrorMessage,
                                                "description": "no such decision"}},
                summary="One decision and its outcome")
    async def get_decision(decision_id: UUID, request: Request, caller: Caller) -> DecisionView:
        record = await _store(request).get(decision_id)
        if record is None:
            raise HTTPException(404, f"decision {decision_id} not found")
        caller.require(record.shop_id)
        return DecisionView.of(record)

    @router.get("/returns/{shop_id}/{return_id}/reject-reasons",
                response_model=RejectReasonsView,
                responses={**AUTH_ERRORS, **NOT_FOUND, **CONFLICT,
                           502: {"model": ErrorMessage, "description": "TikTok refused"}},
                summary="TikTok's reject reasons for the return, in the request's language")
    async def get_reject_reasons(
        request: Request, repository: Repo, caller: Caller, *, shop_id: PathId,
        return_id: PathId, accept_language: Annotated[str | None, Header(max_length=256)] = None,
    ) -> RejectReasonsView:
        caller.require(shop_id)
        state = await _state_of(repository, shop_id, return_id)
        if state.reverse_type is None or SellerDecision.REJECT not in allowed_decisions(
                state.reverse_type, state.status):
            raise _unfit(state, "reject")
        locale = locale_of(accept_language)
        source: RejectReasons = request.app.state.reject_reasons
        reasons, cached = await source.get(shop_id, return_id, state.reverse_type,
                                           state.status, locale)
        return RejectReasonsView(locale=locale, reasons=reasons, cached=cached)

    return router

