"""The one repository of seller decisions (MongoDB): the query API opens them, the ingestor
carries them out, both read them.

`decisions` (one document per decision, `_id` = decision id, `contracts.decisions.DecisionRecord`)
goes queued -> sent -> accepted | refused | failed. `decision_locks` (one per return, `_id` =
return key) names the return's latest decision: while that one may still reach TikTok (queued
or sent), or TikTok accepted it and the return has not changed since, a new decision on the
return is not sent: the same decision gets the existing one back, another one is refused.
Every write is a single-document operation (FerretDB v1 has no transactions), ordered so a
crash between two leaves nothing that blocks a later decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from contracts.decisions import (
    DECISION_LOCKS_COLLECTION,
    DECISIONS_COLLECTION,
    DECISIONS_INDEXES,
    PENDING_DECISIONS,
    DecisionCommand,
    DecisionRecord,
    DecisionStatus,
)
from runtime.indexes import ensure_indexes
from runtime.turns import KeyedTurns

Document = dict[str, Any]
_TIMES = ("created_at", "sent_at", "finished_at")
LOCK_ATTEMPTS = 5


class DecisionPending(Exception):
    """Another decision of the return may still reach TikTok (or was accepted and the return
    has not changed since): this one is not sent."""

    def __init__(self, holder: DecisionRecord) -> None:
        super().__init__(f"decision {holder.decision_id} ({holder.decision.value}) on this "
                         f"return is {holder.status.value}")
        self.holder = holder


class KeyReused(Exception):
    """An Idempotency-Key already names a different decision on this return."""


@dataclass(frozen=True)
class Opened:
    record: DecisionRecord
    created: bool  # False: an existing decision was given back (same key, or a repeat)


def _document(record: DecisionRecord) -> Document:
    doc = record.model_dump(mode="json")
    for name in _TIMES:  # BSON dates, not strings
        doc[name] = getattr(record, name)
    return doc | {"_id": str(record.decision_id)}


def _record(doc: Document | None) -> DecisionRecord | None:
    if doc is None:
        return None
    for name in _TIMES:
        value = doc.get(name)
        if isinstance(value, datetime) and value.tzinfo is None:
            doc[name] = value.replace(tzinfo=UTC)
    return DecisionRecord.model_validate(doc)


def blocks(holder: DecisionRecord, command: DecisionCommand) -> bool:
    """Whether the return's latest decision keeps this one from reaching TikTok."""
    if holder.status in PENDING_DECISIONS:
        return True
    unchanged = (holder.return_status, holder.return_update_time) == (
        command.status, command.return_update_time)
    return holder.status is DecisionStatus.ACCEPTED and unchanged


class DecisionStore:
    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        db = client[database]
        self.decisions: AsyncCollection[Document] = db[DECISIONS_COLLECTION]
        self.locks: AsyncCollection[Document] = db[DECISION_LOCKS_COLLECTION]
        # This process's decisions on one return are opened in turn: FerretDB v1 checks the
        # lock's guard (`decision_id`) when it reads the lock, not when it writes it back, so
        # two decisions at once could each take it and both reach TikTok.
        self._turns = KeyedTurns()

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self.decisions, DECISIONS_INDEXES)

    async def get(self, decision_id: UUID | str) -> DecisionRecord | None:
        return _record(await self.decisions.find_one({"_id": str(decision_id)}))

    async def for_return(self, key: str) -> list[DecisionRecord]:
        """A return's decisions, oldest first."""
        docs = await self.decisions.find({"return_key": key}).to_list()
        records = [r for r in map(_record, docs) if r is not None]
        return sorted(records, key=lambda r: (r.created_at, str(r.decision_id)))

    # ------------------------------------------------------------------ the query API's side

    async def open(self, command: DecisionCommand) -> Opened:
        """Record a new queued decision, or give back the one it repeats (same id, or the same
        decision while the return's latest one blocks). Raises `DecisionPending` when another
        decision blocks it and `KeyReused` when its id names a different decision."""
        async with self._turns(command.key):
            return await self._open(command)

    async def _open(self, command: DecisionCommand) -> Opened:
        known = await self.get(command.decision_id)
        if known is not None:
            return self._repeat(known, command)
        for _ in range(LOCK_ATTEMPTS):
            lock = await self.locks.find_one({"_id": command.key})
            if lock is not None:
                holder = await self.get(str(lock.get("decision_id")))
                if holder is not None and holder.decision_id != command.decision_id \
                        and blocks(holder, command):
                    if holder.same_request(command):
                        return Opened(holder, created=False)
                    raise DecisionPending(holder)
                taken = await self.locks.update_one(
                    {"_id": command.key, "decision_id": lock.get("decision_id")},
                    {"$set": {"decision_id": str(command.decision_id)}})
                if taken.matched_count == 0:
                    continue  # another decision took the lock meanwhile: look again
            else:
                try:
                    await self.locks.insert_one(
                        {"_id": command.key, "decision_id": str(command.decision_id)})
                except DuplicateKeyError:
                    continue
            try:
                record = DecisionRecord.queued(command)
                await self.decisions.insert_one(_document(record))
            except DuplicateKeyError:  # the same key posted twice at once
                again = await self.get(command.decision_id)
                if again is None:
                    raise
                return self._repeat(again, command)
            return Opened(record, created=True)
        holder = await self._holder(command.key)
        if holder is None:
            raise RuntimeError(f"the decision lock of {command.key} kept changing")
        raise DecisionPending(holder)

    @staticmethod
    def _repeat(known: DecisionRecord, command: DecisionCommand) -> Opened:
        if known.return_key != command.key or not known.same_request(command):
            raise KeyReused(f"Idempotency-Key already used for decision {known.decision_id} "
                            f"({known.decision.value}) with other values")
        return Opened(known, created=False)

    async def _holder(self, key: str) -> DecisionRecord | None:
        lock = await self.locks.find_one({"_id": key})
        return None if lock is None else await self.get(str(lock.get("decision_id")))

    async def withdraw(self, decision_id: UUID) -> None:
        """Forget a decision whose command could not be published (still queued)."""
        await self.decisions.delete_one({"_id": str(decision_id),
                                         "status": DecisionStatus.QUEUED.value})

    # ------------------------------------------------------------------ the ingestor's side

    async def receive(self, command: DecisionCommand) -> DecisionRecord | None:
        """Mark the decision sent before TikTok is called (attempts counted); None when it is
        finished already (a redelivered command) or was withdrawn."""
        doc = await self.decisions.find_one_and_update(
            {"_id": str(command.decision_id),
             "status": {"$in": [s.value for s in PENDING_DECISIONS]}},
            {"$set": {"status": DecisionStatus.SENT.value, "sent_at": datetime.now(UTC)},
             "$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return _record(doc)

    async def finish(self, decision_id: UUID, status: DecisionStatus, message: str | None,
                     code: int | None = None) -> None:
        await self.decisions.update_one(
            {"_id": str(decision_id), "status": DecisionStatus.SENT.value},
            {"$set": {"status": status.value, "message": message, "code": code,
                      "finished_at": datetime.now(UTC)}},
        )
