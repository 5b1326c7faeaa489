"""A return the known-key sets call new costs no read, a stored one is still read after a
restart, and a key another consumer added meanwhile is never taken for new.

Real FerretDB; the state machine's own adapter in process, its reads seen through PyMongo's
command monitoring.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient, monitoring

from contracts.messages import ReturnEvent
from contracts.read_model import (
    DAY_S,
    DEFAULT_RETURNS_COLLECTION,
    events_collection,
    keys_collection,
)
from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType
from contracts.topics import EVENTS_TOPIC
from state_machine.batch import Delivery, decode_all, plan
from state_machine.mongo import write_chunk_size
from state_machine.processor import no_rejections
from state_machine.repository import ReadModelRepository
from tests.integration.events import EventClock, event
from tests.integration.harness import Doc

pytestmark = pytest.mark.integration

T0 = 1_732_600_000
RR = ReverseType.RETURN_AND_REFUND
RETURNS, EVENTS = DEFAULT_RETURNS_COLLECTION, events_collection(DEFAULT_RETURNS_COLLECTION)


class ReadsByKey(monitoring.CommandListener):
    """The return keys each `find` on the returns or history collection asked for."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command["find"] in (RETURNS, EVENTS):
            query = event.command.get("filter", {})
            self.keys.append(query.get("_id") or query.get("return_key"))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def watched(mongodb_url: str) -> AsyncIterator[tuple[AsyncMongoClient[Doc], ReadsByKey,
                                                           str]]:
    reads = ReadsByKey()
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongodb_url, tz_aware=True,
                                                     event_listeners=[reads])
    database = f"known_{uuid.uuid4().hex[:8]}"
    try:
        yield client, reads, database
    finally:
        await client.drop_database(database)
        await client.close()


async def _repository(client: AsyncMongoClient[Doc], database: str) -> ReadModelRepository:
    return ReadModelRepository(client, database, RETURNS, await write_chunk_size(client[database]))


def _records(partition: int, first_offset: int, *events: ReturnEvent) -> list[Delivery]:
    return [Delivery(EVENTS_TOPIC, partition, first_offset + n, e.model_dump_json().encode())
            for n, e in enumerate(events)]


async def _apply(repository: ReadModelRepository, deliveries: list[Delivery]) -> None:
    decoded = decode_all(deliveries)
    while not await repository.save(plan(decoded, await repository.load(decoded)),
                                    no_rejections):
        pass


async def _statuses(client: AsyncMongoClient[Doc], database: str) -> dict[str, str]:
    return {doc["_id"]: doc["status"] async for doc in client[database][RETURNS].find({})}


async def test_new_returns_are_stored_without_a_read_and_stored_ones_are_read_after_a_restart(
    watched: tuple[AsyncMongoClient[Doc], ReadsByKey, str],
) -> None:
    client, reads, database = watched
    clock = EventClock()
    opened = [event("s", f"r{i}", S.AFTERSALE_APPLYING, T0, clock.tick(), reverse_type=RR)
              for i in range(3)]
    await _apply(await _repository(client, database), _records(3, 0, *opened))
    assert reads.keys == []  # three new returns: not one read
    assert await client[database][keys_collection(RETURNS)].count_documents({}) >= 1

    restarted = await _repository(client, database)  # empty caches
    moved = [event("s", f"r{i}", S.AFTERSALE_RETURNING, T0 + DAY_S, clock.tick())
             for i in range(3)]
    fresh = event("s", "r3", S.AFTERSALE_APPLYING, T0 + DAY_S, clock.tick(), reverse_type=RR)
    await _apply(restarted, _records(3, 3, *moved, fresh))

    assert set(reads.keys) == {"s:r0", "s:r1", "s:r2"}  # the stored ones, never the new one
    assert await _statuses(client, database) == {
        "s:r0": "AFTERSALE_RETURNING", "s:r1": "AFTERSALE_RETURNING",
        "s:r2": "AFTERSALE_RETURNING", "s:r3": "AFTERSALE_APPLYING"}


async def test_a_return_another_consumer_stored_meanwhile_is_not_taken_for_new(
    watched: tuple[AsyncMongoClient[Doc], ReadsByKey, str],
) -> None:
    client, _, database = watched
    clock = EventClock()
    requested = event("s", "r1", S.AFTERSALE_APPLYING, T0, clock.tick(), reverse_type=RR)
    approved = event("s", "r1", S.AFTERSALE_RETURNING, T0 + DAY_S, clock.tick())
    ours, theirs = await _repository(client, database), await _repository(client, database)
    # Ours reads the key set (r1 unknown) and plans r1 as new, from its approval alone; on
    # another partition, so that the counts, which are per partition, do not collide.
    decoded = decode_all(_records(5, 0, approved))
    planned = plan(decoded, await ours.load(decoded))
    assert planned.changes[0].expected_version is None  # taken for new
    await _apply(theirs, _records(3, 0, requested))  # a rebalance: they store r1 first

    assert not await ours.save(planned, no_rejections)  # refused: the key set moved on
    assert await _history(client, database, "s:r1") == ["AFTERSALE_APPLYING"]  # before any of it
    await _apply(ours, _records(5, 0, approved))  # planned again, from what is stored

    stored = await client[database][RETURNS].find_one({"_id": "s:r1"})
    assert stored is not None
    assert (stored["status"], stored["milestones"]["opened_at"]) == ("AFTERSALE_RETURNING", T0)
    assert await _history(client, database, "s:r1") == [
        "AFTERSALE_APPLYING", "AFTERSALE_RETURNING"]


async def _history(client: AsyncMongoClient[Doc], database: str, key: str) -> list[str]:
    return sorted([doc["event"]["status"]
                   async for doc in client[database][EVENTS].find({"return_key": key})])
