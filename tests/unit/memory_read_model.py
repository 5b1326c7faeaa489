"""An in-memory stand-in for the state machine's MongoDB adapter, for pure tests of batch
planning: it loads what `state_machine.repository` loads and applies a plan's writes with the
same guards (counts move on only from the offset they were read at, returns only from the
version they were read at), and can stop between two writes as a crash would."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from contracts.messages import RejectedEvent
from contracts.read_model import ReturnState
from state_machine.batch import (
    BatchPlan,
    CountsKey,
    Decoded,
    Delivery,
    Loaded,
    Stored,
    StoredEvent,
    decode_all,
    needs_history,
    plan,
    touched_counts,
    touched_keys,
)
from state_machine.documents import stored_event


class Crash(Exception):
    """The process died between two writes."""


@dataclass
class MemoryReadModel:
    returns: dict[str, Stored] = field(default_factory=dict)
    events: dict[str, dict[str, StoredEvent]] = field(default_factory=dict)
    counts: dict[CountsKey, tuple[int, Counter[str]]] = field(default_factory=dict)
    days: dict[CountsKey, Counter[tuple[int, str]]] = field(default_factory=dict)
    rejections: dict[str, RejectedEvent] = field(default_factory=dict)  # the latest per id

    def load(self, decoded: Decoded) -> Loaded:
        returns = {k: self.returns[k] for k in touched_keys(decoded) if k in self.returns}
        counted = {p: self.counts[p][0] for p in touched_counts(decoded) if p in self.counts}
        return Loaded(
            returns=returns,
            histories={k: list(self.events.get(k, {}).values())
                       for k in needs_history(decoded, returns, counted)},
            counted=counted,
        )

    def save(self, result: BatchPlan, crash_after: str = "") -> bool:
        """The adapter's write order: counts, history, rejections, returns; False where the
        adapter's conditional write would be refused; `Crash` after the step named."""
        if not self._save_counts(result):
            return False
        if crash_after == "counts":
            raise Crash
        if not self._save_events(result):
            return False
        if crash_after == "events":
            raise Crash
        for rejection in result.rejections:  # recorded as the state machine records them
            if not rejection.withdrawn or rejection.rejection_id in self.rejections:
                self.rejections[rejection.rejection_id] = rejection
        if crash_after == "published":
            raise Crash
        return self._save_returns(result)

    def _save_counts(self, result: BatchPlan) -> bool:
        for count in result.counts:
            pair = (count.shop_id, count.partition)
            offset = self.counts[pair][0] if pair in self.counts else None
            if offset != count.expected_offset:
                return False
            counts = Counter(self.counts[pair][1] if pair in self.counts else {})
            counts.update(count.delta)  # adds, negative numbers included
            self.counts[pair] = (count.offset, counts)
            self.days.setdefault(pair, Counter()).update(count.day_delta)
        return True

    def _save_events(self, result: BatchPlan) -> bool:
        for change in result.changes:
            history = self.events.setdefault(change.key, {})
            for record in change.events:  # through the stored document's shape
                if record.event.event_id in change.new_events and record.event.event_id in history:
                    return False  # an insert of an existing document: the adapter's refusal
                history[record.event.event_id] = stored_event(record.model_dump(mode="json"))
        return True

    def _save_returns(self, result: BatchPlan) -> bool:
        for change in result.changes:
            stored = self.returns.get(change.key)
            if (stored.version if stored else None) != change.expected_version:
                return False
            if change.state is None:
                self.returns.pop(change.key, None)
            else:
                self.returns[change.key] = Stored(
                    ReturnState.model_validate(change.state.model_dump(mode="json")),
                    change.partition, change.offset, (change.expected_version or 0) + 1,
                    change.last_key)
        return True

    def apply(self, deliveries: list[Delivery], crash_after: str = "") -> BatchPlan:
        decoded = decode_all(deliveries)
        while True:
            result = plan(decoded, self.load(decoded))
            if self.save(result, crash_after):
                return result

    def day_counts(self, shop_id: str) -> Counter[tuple[int, str]]:
        total: Counter[tuple[int, str]] = Counter()
        for (shop, _), days in self.days.items():
            if shop == shop_id:
                total.update(days)
        return +total

    def status_counts(self, shop_id: str) -> Counter[str]:
        total: Counter[str] = Counter()
        for (shop, _), (_, counts) in self.counts.items():
            if shop == shop_id:
                total.update(counts)
        return +total
