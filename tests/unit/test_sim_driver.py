"""The simulator's lifecycle driver: only valid transitions, and the planned webhooks."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest

from contracts.statuses import (
    LEGACY_STATUS_CODES,
    V202309_STATUS_NAMES,
    ReturnStatus,
    ReverseType,
)
from contracts.transitions import RETURN_ONLY_STATUSES, TRANSITIONS, shortest_path
from tiktok_sim.driver import LifecycleDriver, PlannedWebhook, Shares
from tiktok_sim.protocol import ApiVersion
from tiktok_sim.store import SimReturn, SimStore, generate_returns

NOW = 1_750_000_000


def make_driver(version: ApiVersion, count: int = 200, seed: int = 3,
                shares: Shares | None = None) -> tuple[SimStore, LifecycleDriver]:
    store = SimStore()
    rng = random.Random(seed)
    generate_returns(store, rng, "shop", count, version, now=NOW)
    clock = itertools.count(NOW)  # one second per reading: time moves while driving
    return store, LifecycleDriver(store, rng, clock=lambda: float(next(clock)), shares=shares)


def assert_valid_lifecycle(ret: SimReturn) -> None:
    assert ret.history[0].status is ReturnStatus.AFTERSALE_APPLYING
    for before, after in itertools.pairwise(ret.history):
        assert after.status in TRANSITIONS[before.status], (before, after)
        assert after.update_time > before.update_time
    if ret.reverse_type is not ReverseType.RETURN_AND_REFUND:
        assert not {s.status for s in ret.history} & RETURN_ONLY_STATUSES
    if ret.api_version == "202309":
        assert ReturnStatus.CLOSED not in {s.status for s in ret.history}


@pytest.mark.parametrize("version", ["legacy", "202309"])
def test_generated_and_driven_returns_only_make_valid_transitions(version: ApiVersion) -> None:
    store, driver = make_driver(version)
    moved = 0
    for _ in range(60):
        transitions = driver.advance(25)
        moved += len(transitions)
        for t in transitions:
            assert t.to_status in TRANSITIONS[t.from_status]
    assert moved > 50
    for ret in store.returns():
        assert_valid_lifecycle(ret)
    # driven long enough, everything ends in a terminal status
    assert all(not TRANSITIONS[r.status] for r in store.returns())
    seen = {s.status for r in store.returns() for s in r.history}
    assert ReturnStatus.COMPLETE in seen
    assert ReturnStatus.AFTERSALE_BUYER_SHIPPED in seen


def test_refund_only_returns_never_enter_return_only_statuses() -> None:
    store, driver = make_driver("legacy", count=300)
    for _ in range(40):
        driver.advance(50)
    refund_only = [r for r in store.returns() if r.reverse_type is ReverseType.REFUND_ONLY]
    assert len(refund_only) > 50
    assert not {s.status for r in refund_only for s in r.history} & RETURN_ONLY_STATUSES


def test_a_return_entering_buyer_shipped_gets_a_tracking_number() -> None:
    store, driver = make_driver("202309")
    for _ in range(40):
        driver.advance(25)
    shipped = [r for r in store.returns()
               if ReturnStatus.AFTERSALE_BUYER_SHIPPED in {s.status for s in r.history}]
    assert shipped
    assert all(r.tracking_number for r in shipped)


def payload(hook: PlannedWebhook) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(hook.body)
    return body


def status_of(hook: PlannedWebhook) -> ReturnStatus:
    data = payload(hook)["data"]
    if payload(hook)["type"] == 2:
        return LEGACY_STATUS_CODES[data["reverse_order_status"]]
    return V202309_STATUS_NAMES[data["return_status"]]


@pytest.mark.parametrize(("version", "webhook_type"), [("legacy", 2), ("202309", 12)])
def test_each_transition_yields_one_webhook_in_the_shops_format(
    version: ApiVersion, webhook_type: int
) -> None:
    _, driver = make_driver(version)
    transitions = driver.advance(30)
    hooks = driver.webhooks_for(transitions)
    assert len(hooks) == len(transitions) == 30
    for t, hook in zip(transitions, hooks, strict=True):
        body = payload(hook)
        assert body["type"] == webhook_type
        assert body["shop_id"] == "shop"
        assert status_of(hook) is t.to_status
        assert body["data"]["update_time"] == t.update_time
    if version == "202309":
        ids = [payload(h)["tts_notification_id"] for h in hooks]
        assert len(set(ids)) == len(ids)


def test_duplicates_repeat_the_same_delivery() -> None:
    _, driver = make_driver("202309", shares=Shares(duplicate=1.0))
    hooks = driver.webhooks_for(driver.advance(10))
    assert [h.kind for h in hooks] == ["transition", "duplicate"] * 10
    for original, dup in zip(hooks[::2], hooks[1::2], strict=True):
        assert dup.body == original.body


def test_out_of_order_holds_a_webhook_back_until_after_the_next() -> None:
    _, driver = make_driver("legacy", shares=Shares(out_of_order=1.0))
    transitions = driver.advance(5)
    hooks = driver.webhooks_for(transitions)
    order = [(h.return_id, h.update_time) for h in hooks]
    t = [(x.return_id, x.update_time) for x in transitions]
    # t0 held, t1 sent then t0; t2 held, t3 then t2; t4 held until flushed
    assert order == [t[1], t[0], t[3], t[2]]
    assert [h.delayed for h in hooks] == [False, True, False, True]
    assert [(h.return_id, h.update_time) for h in driver.flush_held()] == [t[4]]


def test_invalid_webhooks_claim_unreachable_statuses_of_already_announced_returns() -> None:
    store, driver = make_driver("legacy", count=20, shares=Shares(invalid=1.0))
    first = driver.webhooks_for(driver.advance(20))
    assert all(h.kind == "transition" for h in first)  # unknown to the receiver yet: no bogus
    invalid = []
    for _ in range(10):
        transitions = {(t.shop_id, t.return_id): t for t in driver.advance(20)}
        for hook in driver.webhooks_for(list(transitions.values())):
            if hook.kind == "invalid":
                invalid.append((hook, transitions[(hook.shop_id, hook.return_id)]))
    assert invalid
    for hook, t in invalid:
        ret = store.get(hook.shop_id, hook.return_id)
        assert ret is not None
        claimed = status_of(hook)
        assert claimed not in (t.from_status, t.to_status)
        assert shortest_path(t.from_status, claimed, ret.reverse_type) is None
        assert shortest_path(t.to_status, claimed, ret.reverse_type) is None
        assert hook.update_time > t.update_time
        assert ret.history[-1].status is not claimed or ret.update_time > hook.update_time
