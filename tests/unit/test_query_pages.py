"""Planning a tab's page bucket by bucket (pure): which buckets, in which order, and when a
list may be read so."""

from __future__ import annotations

from contracts.read_model import DAY_S, HOUR_S, CountsDocument, page_fields
from contracts.statuses import ReturnStatus
from query_api.pages import (
    DAY_READ_MAX,
    Read,
    after_cursor,
    bucket_filters,
    day_histogram,
    reads,
    walks_buckets,
)
from query_api.queries import Cursor, ListParams

D0 = 1_732_579_200  # a day's first second (UTC)


def test_a_shops_tab_without_other_filters_is_read_by_buckets() -> None:
    assert walks_buckets(ListParams(shop_id="s", statuses=(ReturnStatus.COMPLETE,)))
    assert not walks_buckets(ListParams())
    assert not walks_buckets(ListParams(shop_id="s", order_id="o"))
    assert not walks_buckets(ListParams(shop_id="s", anomaly=True))


def test_the_histogram_sums_partitions_and_keeps_the_tabs_statuses() -> None:
    docs = [CountsDocument(shop_id="s", partition=p, offset=1, counts={},
                           days={str(D0): {"COMPLETE": 2, "CLOSED": 1}, str(D0 + DAY_S): {}})
            for p in (0, 1)]
    assert day_histogram(docs, []) == {D0: 6}
    assert day_histogram(docs, ["CLOSED"]) == {D0: 2}


def test_quiet_days_are_read_together_until_they_hold_a_page() -> None:
    histogram = {D0 + i * DAY_S: 10 for i in range(10)}
    groups = reads(histogram, None, 25)
    assert groups[0] == [Read(DAY_S, (D0 + 9 * DAY_S, D0 + 8 * DAY_S, D0 + 7 * DAY_S))]
    assert [r.starts for g in groups for r in g][1:] == [
        tuple(D0 + i * DAY_S for i in (6, 5, 4)), tuple(D0 + i * DAY_S for i in (3, 2, 1)), (D0,)]


def test_a_busy_day_is_read_hour_by_hour_newest_first() -> None:
    groups = reads({D0: DAY_READ_MAX + 1, D0 - DAY_S: 5}, None, 50)
    hours = [g[0].starts[0] for g in groups[:24]]
    assert hours == [D0 + h * HOUR_S for h in range(23, -1, -1)]
    assert all(g[0].seconds == HOUR_S for g in groups[:24])
    assert groups[24] == [Read(DAY_S, (D0 - DAY_S,))]


def test_a_cursor_starts_the_walk_at_its_own_day_and_hour() -> None:
    cursor = Cursor(update_time=D0 + 5 * HOUR_S + 10, id="s:r9")
    groups = reads({D0 + DAY_S: 3, D0: DAY_READ_MAX + 1}, cursor, 50)
    assert groups[0] == [Read(HOUR_S, (D0 + 5 * HOUR_S,))]
    assert len(groups) == 6


def test_a_bucket_is_read_by_equality_on_the_key_stored_returns_carry() -> None:
    stored = page_fields("s", "COMPLETE", D0 + 7 * HOUR_S + 5)
    (by_status,) = bucket_filters("s", ["COMPLETE"], Read(HOUR_S, (D0 + 7 * HOUR_S,)))
    assert by_status == {"page_status_hour": stored["page_status_hour"]}
    (every,) = bucket_filters("s", [], Read(DAY_S, (D0,)))
    assert every == {"page_day": stored["page_day"]}


def test_after_the_cursor_means_older_or_the_same_second_and_a_smaller_id() -> None:
    cursor = Cursor(update_time=100, id="s:5")
    assert after_cursor({"update_time": 99, "_id": "s:9"}, cursor)
    assert after_cursor({"update_time": 100, "_id": "s:4"}, cursor)
    assert not after_cursor({"update_time": 100, "_id": "s:5"}, cursor)
    assert not after_cursor({"update_time": 101, "_id": "s:0"}, cursor)
