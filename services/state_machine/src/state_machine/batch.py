"""Turning one consumed batch into what to store: pure, no I/O.

The consumer hands over the batch's deliveries and what is stored of the returns they touch;
this module decodes them, skips redeliveries, folds each return's events through
`domain.fold` and says what to write:

- the returns' new states (versioned, so a consumer that lost a partition cannot overwrite);
- their history documents that are new or changed;
- the change of each shop's status counts, per partition, for the records the counts do not
  hold yet (they are written first and remember the last offset they hold, so a crash between
  the writes, or a redelivered batch of another size, never counts a record twice);
- rejections, and withdrawals of rejections that a late event made moot.

A return whose new events all come after every stored one is folded on from its stored state
(no history read); any other (a late event, a duplicate of an old one, a new return) is folded
again from all its events, which the adapter loads first (`needs_history`).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from pydantic import ValidationError

from contracts.messages import RejectedEvent, RejectionReason, ReturnEvent, raw_text
from contracts.read_model import DAY_S, EventRecord, Outcome, ReturnState, bucket_start
from contracts.statuses import ReturnStatus
from contracts.transitions import LIFECYCLE_RANK
from state_machine.domain import BEFORE_ALL, Fact, OrderKey, Verdict, fold, merge, order_key


@dataclass(frozen=True)
class Delivery:
    """One record as consumed from Kafka."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass(frozen=True)
class Stored:
    """A return as stored, with the position of the last delivery folded into it."""

    state: ReturnState
    partition: int
    offset: int
    version: int
    last_key: OrderKey  # the fold-order key of its newest event, rejected ones included

    def has_applied(self, delivery: Delivery) -> bool:
        return delivery.partition == self.partition and delivery.offset <= self.offset


@dataclass(frozen=True)
class StoredEvent:
    """One event of a return as stored in the history collection."""

    fact: Fact
    verdict: Verdict
    partition: int
    offset: int  # its last delivery counted in `fact.deliveries`
    last_rejection: RejectionReason | None = None  # kept when withdrawn (see `_rejections`)

    def has_counted(self, delivery: Delivery) -> bool:
        return delivery.partition == self.partition and delivery.offset <= self.offset


CountsKey = tuple[str, int]  # (shop id, partition)


@dataclass
class Loaded:
    """What is stored of the returns a batch touches."""

    returns: dict[str, Stored] = field(default_factory=dict)
    histories: dict[str, list[StoredEvent]] = field(default_factory=dict)  # for `needs_history`
    counted: dict[CountsKey, int] = field(default_factory=dict)  # offset the counts hold


@dataclass(frozen=True)
class Change:
    key: str
    shop_id: str
    state: ReturnState | None  # None: no event of it applies (a stored one is then deleted)
    last_key: OrderKey
    partition: int
    offset: int
    expected_version: int | None  # None: the return is not stored
    events: tuple[EventRecord, ...]  # history documents to write: new or changed
    new_events: frozenset[str] = frozenset()  # of those, the ids not stored yet (inserted)


@dataclass(frozen=True)
class CountChange:
    shop_id: str
    partition: int
    expected_offset: int | None  # None: the shop has no counts on this partition yet
    offset: int
    delta: dict[str, int]  # status -> change
    day_delta: dict[tuple[int, str], int]  # (first second of the update's day, status) -> change


@dataclass
class BatchPlan:
    changes: list[Change] = field(default_factory=list)
    counts: list[CountChange] = field(default_factory=list)
    rejections: list[RejectedEvent] = field(default_factory=list)
    outcomes: dict[Outcome, int] = field(default_factory=lambda: defaultdict(int))
    redelivered: int = 0


MAX_RAW_CHARS = 64 * 1024  # what a rejection keeps of a record: enough to read, never too big


def rejected_record(delivery: Delivery, reason: RejectionReason, detail: str,
                    shop_id: str | None = None, return_id: str | None = None) -> RejectedEvent:
    """A record that is no event, or whose event could not be stored: kept with its position."""
    return RejectedEvent(
        rejection_id=f"{delivery.topic}:{delivery.partition}:{delivery.offset}",
        reason=reason, detail=detail, stage="state_machine",
        shop_id=shop_id, return_id=return_id, source_topic=delivery.topic,
        source_partition=delivery.partition, source_offset=delivery.offset,
        raw=None if delivery.value is None else raw_text(delivery.value)[:MAX_RAW_CHARS],
    )


def _rejected_event(record: EventRecord, topic: str, *, withdrawn: bool) -> RejectedEvent:
    """An event the fold rejects (or no longer rejects): one id per event, whatever made it."""
    assert record.reason is not None
    return RejectedEvent(
        rejection_id=f"event:{record.event.event_id}", reason=record.reason,
        detail=record.note or "", stage="state_machine", shop_id=record.shop_id,
        return_id=record.event.return_id, source_topic=topic,
        source_partition=record.partition, source_offset=record.offset,
        event=record.event, withdrawn=withdrawn,
    )


def decode(delivery: Delivery) -> ReturnEvent | RejectedEvent:
    """A delivery's event, or the reason it is not one."""
    if delivery.value is None:
        return rejected_record(delivery, RejectionReason.UNDECODABLE, "empty message")
    try:
        return ReturnEvent.model_validate_json(delivery.value)  # the fast path: a valid event
    except ValidationError:
        pass
    try:
        payload = json.loads(delivery.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return rejected_record(delivery, RejectionReason.UNDECODABLE, f"not JSON: {exc}")
    try:
        return ReturnEvent.model_validate(payload)
    except ValidationError as exc:
        shop_id = return_id = None
        if isinstance(payload, dict):
            shop_id, return_id = _text(payload.get("shop_id")), _text(payload.get("return_id"))
            status = payload.get("status")
            if isinstance(status, str) and status not in ReturnStatus.__members__:
                return rejected_record(
                    delivery, RejectionReason.UNKNOWN_STATUS,
                    f"unknown status {status!r}; valid: {', '.join(ReturnStatus)}",
                    shop_id, return_id,
                )
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        return rejected_record(delivery, RejectionReason.INVALID_EVENT, errors,
                               shop_id, return_id)


def _text(value: object) -> str | None:
    return None if value is None else str(value)[:128]


Decoded = list[tuple[Delivery, ReturnEvent | RejectedEvent]]
Items = list[tuple[Delivery, ReturnEvent]]


def decode_all(deliveries: list[Delivery]) -> Decoded:
    return [(delivery, decode(delivery)) for delivery in deliveries]


def touched_keys(decoded: Decoded) -> dict[str, str]:
    """The keys of the returns the batch's events are of, each with its shop."""
    return {item.key: item.shop_id for _, item in decoded if isinstance(item, ReturnEvent)}


def touched_counts(decoded: Decoded) -> set[CountsKey]:
    return {(item.shop_id, d.partition) for d, item in decoded if isinstance(item, ReturnEvent)}


def _new_items(decoded: Decoded, returns: dict[str, Stored]) -> tuple[dict[str, Items], int]:
    """Each return's deliveries in offset order, without those already applied (a batch
    redelivered after a crash before its commit), and how many were left out."""
    per_return: dict[str, Items] = defaultdict(list)
    redelivered = 0
    for delivery, item in sorted(decoded, key=lambda pair: pair[0].offset):
        if isinstance(item, RejectedEvent):
            continue
        stored = returns.get(item.key)
        if stored is not None and stored.has_applied(delivery):
            redelivered += 1
        else:
            per_return[item.key].append((delivery, item))
    return per_return, redelivered


def needs_history(decoded: Decoded, returns: dict[str, Stored],
                  counted: dict[CountsKey, int]) -> set[str]:
    """The returns whose new events cannot simply be folded on from their stored state."""
    wanted = set()
    for key, items in _new_items(decoded, returns)[0].items():
        stored = returns.get(key)
        if (
            stored is None  # new, or every event of it so far was rejected
            or any(order_key(event) <= stored.last_key for _, event in items)  # late or repeated
            or (stored.state.reverse_type is None and any(e.reverse_type for _, e in items))
            or _resumed(items, counted)
        ):
            wanted.add(key)
    return wanted


def _resumed(items: Items, counted: dict[CountsKey, int]) -> Items:
    """The items an earlier attempt at this batch got as far as counting (it wrote the counts
    first, then died): it may have stored their history and announced their rejections, so
    the return is folded from its stored history, and its rejections announced again."""
    return [(d, e) for d, e in items if d.offset <= counted.get((e.shop_id, d.partition), -1)]


@dataclass
class _Facts:
    """The facts of one return after a batch, and where each was last delivered."""

    facts: dict[str, Fact] = field(default_factory=dict)
    position: dict[str, tuple[int, int]] = field(default_factory=dict)
    before: dict[str, StoredEvent] = field(default_factory=dict)

    def add(self, delivery: Delivery, event: ReturnEvent) -> bool:
        """Count one delivery; False when it was counted before (a redelivery)."""
        eid = event.event_id
        known = self.before.get(eid)
        if known is not None and known.has_counted(delivery):
            return False
        fact = Fact.of(event)
        self.facts[eid] = fact if eid not in self.facts else merge(self.facts[eid], fact)
        self.position[eid] = (delivery.partition, delivery.offset)
        return True


def _fold_return(
    stored: Stored | None, history: list[StoredEvent] | None, items: Items
) -> tuple[ReturnState | None, list[EventRecord], dict[str, StoredEvent], Counter[Outcome]]:
    """One return's state after the items, the history documents of the events folded (all
    of them when `history` is given), what was stored of them before, and what each delivery
    did."""
    facts = _Facts(before={se.fact.event.event_id: se for se in history or ()})
    for se in facts.before.values():
        facts.facts[se.fact.event.event_id] = se.fact
        facts.position[se.fact.event.event_id] = (se.partition, se.offset)
    outcomes: Counter[Outcome] = Counter()
    seen = set(facts.before)
    new_ids = []
    for delivery, event in items:
        if facts.add(delivery, event) and event.event_id in seen:
            outcomes[Outcome.DUPLICATE] += 1
        elif event.event_id not in seen:
            seen.add(event.event_id)
            new_ids.append(event.event_id)
    if history is None and stored is not None:  # every new event is after every stored one
        folded = fold(stored.state, [facts.facts[eid] for eid in new_ids])
    else:
        folded = fold(None, list(facts.facts.values()))
    for eid in new_ids:
        outcomes[folded.verdicts[eid].outcome] += 1
    key = items[0][1].key
    records = [
        _record(key, facts.facts[eid], verdict, facts.position[eid], facts.before.get(eid))
        for eid, verdict in folded.verdicts.items()
    ]
    return folded.state, records, facts.before, outcomes


def _record(key: str, fact: Fact, verdict: Verdict, position: tuple[int, int],
            before: StoredEvent | None) -> EventRecord:
    event = fact.event
    last_rejection = verdict.reason if verdict.outcome is Outcome.REJECTED else (
        before.last_rejection if before else None)
    return EventRecord(
        return_key=key, shop_id=event.shop_id, update_time=event.update_time,
        rank=LIFECYCLE_RANK[event.status], event=event, deliveries=fact.deliveries,
        last_observed_at=fact.last_observed_at, partition=position[0], offset=position[1],
        outcome=verdict.outcome, inferred=verdict.inferred, reason=verdict.reason,
        note=verdict.note, last_rejection=last_rejection,
    )


def _tally(state: ReturnState | None) -> tuple[str, tuple[int, str]] | None:
    """Where a return counts: its status, and its status on its update's day."""
    if state is None:
        return None
    return state.status.value, (bucket_start(state.update_time, DAY_S), state.status.value)


def plan(decoded: Decoded, loaded: Loaded) -> BatchPlan:
    """What the batch does to the read model. `loaded` holds what is stored of the returns
    the batch touches (histories for those of `needs_history`) and the offsets up to which
    each (shop, partition)'s counts hold the batch's records."""
    result = BatchPlan()
    result.rejections += [item for _, item in decoded if isinstance(item, RejectedEvent)]
    result.outcomes[Outcome.REJECTED] += len(result.rejections)
    per_return, result.redelivered = _new_items(decoded, loaded.returns)
    deltas: dict[CountsKey, Counter[str]] = defaultdict(Counter)
    day_deltas: dict[CountsKey, Counter[tuple[int, str]]] = defaultdict(Counter)
    upto: dict[CountsKey, int] = {}
    for key, items in per_return.items():
        stored, history = loaded.returns.get(key), loaded.histories.get(key)
        state, records, before_events, outcomes = _fold_return(stored, history, items)
        result.outcomes.update(outcomes)
        counts_key = (items[0][1].shop_id, items[0][0].partition)
        done = _resumed(items, loaded.counted)
        if len(done) < len(items):  # the counts do not hold all of these records yet
            before = (_fold_return(stored, history, done)[0] if done
                      else stored.state if stored else None)
            for tally, sign in ((_tally(before), -1), (_tally(state), 1)):
                if tally is not None:
                    deltas[counts_key][tally[0]] += sign
                    day_deltas[counts_key][tally[1]] += sign
            upto[counts_key] = max(upto.get(counts_key, -1), items[-1][0].offset)
        changed = [r for r in records if _changed(r, before_events.get(r.event.event_id))]
        result.rejections += _rejections(records if done else changed, before_events,
                                         items[0][0].topic, resumed=bool(done))
        last_key = max([stored.last_key if stored else BEFORE_ALL,
                        *((r.update_time, r.rank) for r in records)])
        result.changes.append(Change(
            key, items[0][1].shop_id, state, last_key, items[-1][0].partition, items[-1][0].offset,
            stored.version if stored else None, tuple(changed),
            frozenset(r.event.event_id for r in changed
                      if r.event.event_id not in before_events),
        ))
    for pair, offset in sorted(upto.items()):
        delta = {s: n for s, n in deltas[pair].items() if n}
        day_delta = {d: n for d, n in day_deltas[pair].items() if n}
        result.counts.append(
            CountChange(*pair, loaded.counted.get(pair), offset, delta, day_delta))
    return result


def _changed(record: EventRecord, stored: StoredEvent | None) -> bool:
    return stored is None or (
        stored.fact.deliveries, stored.verdict, stored.fact.event, stored.offset,
        stored.last_rejection,
    ) != (
        record.deliveries, Verdict(record.outcome, record.inferred, record.reason, record.note),
        record.event, record.offset, record.last_rejection,
    )


def _rejections(records: list[EventRecord], before: dict[str, StoredEvent], topic: str,
                resumed: bool) -> list[RejectedEvent]:
    """Rejections the fold gives, and those it no longer gives (withdrawn, not deleted).

    Announced after the history is stored: a batch that resumes an earlier attempt cannot
    tell what that attempt announced before it died, so it announces every rejection of the
    return again (the same ids), and withdraws again every event that was ever rejected
    (`last_rejection`) and is not now."""
    out = []
    for record in records:
        stored = before.get(record.event.event_id)
        was = stored.verdict if stored else None
        was_rejected = was is not None and was.outcome is Outcome.REJECTED
        if record.outcome is Outcome.REJECTED:
            if resumed or not was_rejected or (was is not None and was.reason != record.reason):
                out.append(_rejected_event(record, topic, withdrawn=False))
        elif record.last_rejection is not None and (resumed or was_rejected):
            withdrawn = record.model_copy(update={
                "reason": record.last_rejection, "note": was.note if was else None})
            out.append(_rejected_event(withdrawn, topic, withdrawn=True))
    return out
