"""Which failures are the infrastructure's (the batch is retried) and which one event's (it is
taken out of its batch and rejected), and the bisecting that finds that event (pure; the store
is tests.unit.memory_read_model)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from pymongo.errors import AutoReconnect, ConnectionFailure, OperationFailure

from contracts.messages import EventSource, RejectedEvent, RejectionReason, ReturnEvent
from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType as T
from contracts.topics import EVENTS_TOPIC
from state_machine.batch import BatchPlan, Decoded, Delivery, Loaded
from state_machine.processor import BatchProcessor, is_infrastructure_error
from tests.unit.memory_read_model import MemoryReadModel

T0 = 1_732_600_000


def ferretdb_error(sqlstate: str) -> OperationFailure:
    message = f"[msg_update.go:133] ERROR: something (SQLSTATE {sqlstate})"
    return OperationFailure(message, code=1, details={"errmsg": message, "code": 1})


@pytest.mark.parametrize("exc", [
    AutoReconnect("connection reset"), TimeoutError(), ConnectionRefusedError(),
    KafkaConnectionError(), OperationFailure("not primary", code=10107),
    ferretdb_error("57P01"), ferretdb_error("08006"), ferretdb_error("40P01"),
])
def test_outages_and_restarts_are_infrastructure_errors(exc: BaseException) -> None:
    assert is_infrastructure_error(exc)


@pytest.mark.parametrize("exc", [
    OverflowError("MongoDB can only handle up to 8-byte ints"), ValueError("bad"),
    ferretdb_error("22P05"), MessageSizeTooLargeError(),
    OperationFailure("document too large", code=10334),
])
def test_what_one_event_causes_is_not_an_infrastructure_error(exc: BaseException) -> None:
    assert not is_infrastructure_error(exc)


class Store:
    """The in-memory store behind the processor's interface, failing on a chosen input."""

    def __init__(self, fail_on: str, error: Exception) -> None:
        self.model, self.fail_on, self.error = MemoryReadModel(), fail_on, error

    async def load(self, decoded: Decoded) -> Loaded:
        if any(isinstance(e, ReturnEvent) and e.return_id == self.fail_on for _, e in decoded):
            raise self.error
        return self.model.load(decoded)

    async def save(self, plan: BatchPlan, announce: Any) -> bool:
        await announce(plan.rejections)
        return self.model.save(plan)


def batch(*return_ids: str) -> list[Delivery]:
    return [Delivery(EVENTS_TOPIC, 0, offset, ReturnEvent(
        shop_id="s", return_id=rid, order_id="o", status=S.AFTERSALE_APPLYING, update_time=T0,
        reverse_type=T.REFUND_ONLY, source=EventSource.SYNC_202309).model_dump_json().encode())
        for offset, rid in enumerate(return_ids)]


def processor(store: Store, published: list[RejectedEvent], healthy: bool = True
              ) -> BatchProcessor:
    async def repository() -> Any:
        return store

    async def publish(rejections: list[RejectedEvent]) -> None:
        published.extend(rejections)

    async def probe() -> bool:
        return healthy

    return BatchProcessor(repository, publish, probe)


async def test_the_event_that_fails_is_bisected_out_and_the_others_are_applied() -> None:
    store, published = Store("bad", OverflowError("8-byte ints")), list[RejectedEvent]()
    await processor(store, published).process(batch("a", "b", "c", "bad", "d", "e", "f"))
    assert set(store.model.returns) == {f"s:{r}" for r in "abcdef"}
    (rejection,) = published
    assert rejection.reason is RejectionReason.UNPROCESSABLE
    assert (rejection.source_offset, rejection.return_id) == (3, "bad")
    assert "OverflowError" in rejection.detail


async def test_an_infrastructure_error_is_raised_for_the_whole_batch_to_be_retried() -> None:
    store, published = Store("bad", AutoReconnect("down")), list[RejectedEvent]()
    with pytest.raises(AutoReconnect):
        await processor(store, published).process(batch("a", "bad"))
    assert published == []


async def test_a_failing_event_while_the_store_is_unhealthy_is_not_rejected() -> None:
    store, published = Store("bad", ValueError("odd")), list[RejectedEvent]()
    with pytest.raises(ConnectionFailure):
        await processor(store, published, healthy=False).process(batch("a", "bad"))
    assert published == []
