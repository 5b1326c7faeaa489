"""The legacy search walks time, not offsets (issue 16): updates made while a sync pages shift
nothing still to be read, and a second holding more than a page does not stall it."""

from __future__ import annotations

import time

import httpx

from contracts.messages import ReturnEvent
from tests.unit.test_tiktok_client import SHOP, client_for, collect, event_ids, sim_with
from tiktok_sim.store import Step


async def test_returns_updated_while_it_pages_skip_none_that_stayed_in_the_window() -> None:
    # Returns of an hour ago and before: a return moved while the sync pages leaves the window
    # (its update time is now). Generated up to now, the moved returns would pile up in the
    # window's last second, past a page of them: the one case the time walk steps through by
    # offset, where a move can still shift a neighbour (README, "Legacy sync").
    app, state = sim_with(1000, "legacy", seed=3, now=int(time.time()) - 3600)
    before = {r.return_id: r.update_time for r in state.store.returns(SHOP)}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sim") as admin:
        # 10 % of the returns move while the sync pages (about 10 per page).
        response = await admin.post("/_sim/faults", json={"update_while_paging": 10})
        assert response.status_code == 200
        until = max(before.values()) + 1
        pages = await collect(client_for(app, "legacy", legacy_page_size=100), since=0,
                              until=until)
    moved = {r.return_id for r in state.store.returns(SHOP) if r.update_time != before[r.return_id]}
    assert len(moved) >= 80
    seen = set(event_ids(pages))
    unchanged = set(before) - moved
    assert unchanged <= seen, f"skipped {len(unchanged - seen)} returns that never moved"
    # No record is read twice in one sync, even at the pages' boundary seconds.
    keys = [(e.return_id, e.update_time) for p in pages for e in p.results
            if isinstance(e, ReturnEvent)]
    assert len(keys) == len(set(keys))


async def test_more_than_a_page_of_returns_in_one_second_does_not_stall_it() -> None:
    app, state = sim_with(250, "legacy", seed=4)
    same_second = min(r.update_time for r in state.store.returns(SHOP)) - 100
    for ret in state.store.returns(SHOP)[:230]:  # 230 returns of one second, pages of 100
        ret.history.append(Step(ret.status, same_second, ret.history[-1].actor))
    pages = await collect(client_for(app, "legacy", legacy_page_size=100))
    ids = event_ids(pages)
    assert sorted(ids) == sorted(r.return_id for r in state.store.returns(SHOP))
    assert len(pages) <= 5

