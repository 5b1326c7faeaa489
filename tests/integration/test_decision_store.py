"""Two different decisions on one return at the same moment: one goes to TikTok, never both.

Real FerretDB. Its update reads the document, then writes all of it back, and a guard in
the filter is checked at the read only: two decisions that both read the return's lock
before either wrote it each took it, and both were queued for TikTok.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pymongo import AsyncMongoClient

from contracts.decisions import DecisionCommand, DecisionStatus, SellerDecision
from contracts.statuses import ReturnStatus, ReverseType
from runtime.decision_store import DecisionPending, DecisionStore
from tests.integration.harness import Doc

pytestmark = pytest.mark.integration

ROUNDS = 30


def decision(return_id: str, choice: SellerDecision) -> DecisionCommand:
    return DecisionCommand(
        decision_id=uuid.uuid4(), shop_id="shop-d", return_id=return_id, decision=choice,
        reverse_type=ReverseType.RETURN_AND_REFUND, status=ReturnStatus.AFTERSALE_APPLYING,
        return_update_time=1_732_600_000, label="seller",
        reason="reverse_reject_reason_1" if choice is SellerDecision.REJECT else None)


async def test_of_two_decisions_on_one_return_at_once_only_one_is_queued(
    mongo: AsyncMongoClient[Doc],
) -> None:
    store = DecisionStore(mongo, f"decisions_{uuid.uuid4().hex[:8]}")
    await store.ensure_indexes()
    for round_ in range(ROUNDS):
        return_id = f"r{round_}"
        # An earlier decision that TikTok refused leaves the lock behind, so both take the
        # guarded update of an existing lock.
        earlier = decision(return_id, SellerDecision.APPROVE)
        await store.open(earlier)
        assert await store.receive(earlier) is not None
        await store.finish(earlier.decision_id, DecisionStatus.REFUSED, "refused by TikTok")
        outcomes = await asyncio.gather(
            store.open(decision(return_id, SellerDecision.APPROVE)),
            store.open(decision(return_id, SellerDecision.REJECT)),
            return_exceptions=True)
        created = [o for o in outcomes if not isinstance(o, BaseException) and o.created]
        pending = [o for o in outcomes if isinstance(o, DecisionPending)]
        assert (len(created), len(pending)) == (1, 1), (round_, outcomes)
