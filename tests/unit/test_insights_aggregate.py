"""The insights' aggregations on hand-made rows whose answers are worked out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from contracts.statuses import ReturnStatus
from query_api.insights.aggregate import (
    MEDIAN,
    P90,
    HistoryRow,
    Refund,
    ReturnRow,
    Sku,
    Window,
    insights,
    milestones,
    quantile,
    week_of,
)

S = ReturnStatus
UTC_ZONE = ZoneInfo("UTC")
KL = ZoneInfo("Asia/Kuala_Lumpur")  # UTC+8, no daylight saving time


def at(text: str) -> int:
    """Unix seconds of an ISO time in UTC."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def window(start: str, end: str, zone: ZoneInfo = UTC_ZONE) -> Window:
    return Window(at(start), at(end), zone)


def row(key: str, status: ReturnStatus = S.AFTERSALE_APPLYING, request: str | None = None,
        **fields: object) -> ReturnRow:
    return ReturnRow(key=key, status=status,
                     request_time=at(request) if request is not None else None,
                     **fields)  # type: ignore[arg-type]


def usd(amount: str) -> Refund:
    return Refund(Decimal(amount), "USD")


def event(key: str, status: ReturnStatus, when: str, *inferred: ReturnStatus,
          rank: int = 0) -> HistoryRow:
    return HistoryRow(return_key=key, update_time=at(when), rank=rank, status=status,
                      inferred=inferred)


# ------------------------------------------------------------------------------- per day


def test_returns_opened_per_day_are_stacked_by_current_status_with_empty_days_kept() -> None:
    rows = [
        row("a", S.COMPLETE, "2025-03-03T10:00:00"),
        row("b", S.AFTERSALE_APPLYING, "2025-03-03T23:00:00"),
        row("c", S.COMPLETE, "2025-03-03T01:00:00"),
        row("d", S.CLOSED, "2025-03-05T12:00:00"),
    ]
    view = insights("shop", window("2025-03-03", "2025-03-06"), rows, [], set())
    assert [(d.day, d.total, d.by_status) for d in view.opened_per_day] == [
        (date(2025, 3, 3), 3, {S.AFTERSALE_APPLYING: 1, S.COMPLETE: 2}),
        (date(2025, 3, 4), 0, {}),
        (date(2025, 3, 5), 1, {S.CLOSED: 1}),
    ]
    assert view.returns == 4


def test_days_are_counted_in_the_requested_time_zone() -> None:
    # 2025-03-03 23:00 UTC is already 2025-03-04 07:00 in Kuala Lumpur.
    rows = [row("a", request="2025-03-03T15:00:00"), row("b", request="2025-03-03T23:00:00")]
    utc = insights("shop", window("2025-03-02T16:00:00", "2025-03-04T16:00:00"), rows, [], set())
    kl = insights("shop", window("2025-03-02T16:00:00", "2025-03-04T16:00:00", KL), rows, [],
                  set())
    assert [(d.day.isoformat(), d.total) for d in utc.opened_per_day] == [
        ("2025-03-02", 0), ("2025-03-03", 2), ("2025-03-04", 0)]
    assert [(d.day.isoformat(), d.total) for d in kl.opened_per_day] == [
        ("2025-03-03", 1), ("2025-03-04", 1)]


def test_a_window_over_a_daylight_saving_change_has_each_local_day_once() -> None:
    london = ZoneInfo("Europe/London")  # clocks go forward on 2025-03-30
    days = Window(at("2025-03-29T00:00:00"), at("2025-04-01T23:00:00"), london).days()
    assert days == [date(2025, 3, 29), date(2025, 3, 30), date(2025, 3, 31), date(2025, 4, 1)]


def test_returns_outside_the_window_are_left_out_and_its_end_is_exclusive() -> None:
    rows = [row("early", request="2025-03-02T23:59:59"), row("in", request="2025-03-03T00:00:00"),
            row("end", request="2025-03-04T00:00:00")]
    view = insights("shop", window("2025-03-03", "2025-03-04"), rows, [], set())
    assert view.returns == 1


# ------------------------------------------------------------------------------- refunds


def test_refunds_add_up_per_currency_and_week_only_for_returns_that_completed() -> None:
    rows = [
        row("a", S.COMPLETE, "2025-03-03T10:00:00", refund=usd("0.10")),  # Monday
        row("b", S.COMPLETE, "2025-03-09T10:00:00", refund=usd("0.20")),  # Sunday, same week
        row("c", S.AFTERSALE_SUCCESS, "2025-03-04T10:00:00", refund=usd("99.00")),  # not yet
        row("d", S.COMPLETE, "2025-03-10T10:00:00", refund=Refund(Decimal("5.5"), "GBP")),
        row("e", S.COMPLETE, "2025-03-11T10:00:00"),  # amount not known
    ]
    view = insights("shop", window("2025-03-03", "2025-03-24"), rows, [], set())
    by_currency = {c.currency: c for c in view.refunds_per_week}
    assert list(by_currency) == ["GBP", "USD"]
    usd_weeks = by_currency["USD"]
    assert (usd_weeks.total, usd_weeks.returns) == (Decimal("0.30"), 2)
    assert [(w.week, w.amount, w.returns) for w in usd_weeks.weeks] == [
        (date(2025, 3, 3), Decimal("0.30"), 2),
        (date(2025, 3, 10), Decimal("0"), 0),
        (date(2025, 3, 17), Decimal("0"), 0),
    ]
    assert [(w.week, w.amount) for w in by_currency["GBP"].weeks][1] == (
        date(2025, 3, 10), Decimal("5.5"))


def test_weeks_start_on_monday_in_the_time_zone() -> None:
    # Sunday 2025-03-09 20:00 UTC is Monday 2025-03-10 04:00 in Kuala Lumpur.
    rows = [row("a", S.COMPLETE, "2025-03-09T20:00:00", refund=usd("1"))]
    span = ("2025-03-02T16:00:00", "2025-03-16T16:00:00")
    utc = insights("shop", window(*span), rows, [], set()).refunds_per_week[0]
    kl = insights("shop", window(*span, KL), rows, [], set()).refunds_per_week[0]
    assert [w.week for w in utc.weeks if w.returns] == [date(2025, 3, 3)]
    assert [w.week for w in kl.weeks if w.returns] == [date(2025, 3, 10)]
    assert week_of(date(2025, 3, 9)) == date(2025, 3, 3)


# ------------------------------------------------------------------------------- top lists


def test_top_reasons_rank_by_returns_and_per_currency_by_refunded_amount() -> None:
    rows = [
        row("a", S.COMPLETE, "2025-03-03", reason="damaged", reason_text="Arrived damaged",
            refund=usd("10")),
        row("b", S.COMPLETE, "2025-03-03", reason="damaged", refund=usd("5")),
        row("c", S.CLOSED, "2025-03-03", reason="damaged", refund=usd("1000")),  # no refund
        row("d", S.COMPLETE, "2025-03-03", reason="wrong_item", refund=usd("40")),
        row("e", S.COMPLETE, "2025-03-03", reason="changed_mind",
            refund=Refund(Decimal("7"), "GBP")),
        row("f", S.COMPLETE, "2025-03-03", refund=usd("3")),  # no reason known
    ]
    top = insights("shop", window("2025-03-03", "2025-03-04"), rows, [], set()).top_reasons
    assert [(r.key, r.label, r.returns) for r in top.by_count] == [
        ("damaged", "Arrived damaged", 3),
        ("changed_mind", "changed_mind", 1),  # ties: by key
        ("wrong_item", "wrong_item", 1),
    ]
    assert [(c.currency, [(r.key, r.amount, r.returns) for r in c.items])
            for c in top.by_amount] == [
        ("GBP", [("changed_mind", Decimal("7"), 1)]),
        ("USD", [("wrong_item", Decimal("40"), 1), ("damaged", Decimal("15"), 2)]),
    ]
    assert top.unknown == 1


def test_top_lists_keep_only_the_top_n() -> None:
    rows = [row(str(n), request="2025-03-03", reason=f"r{n % 4}") for n in range(10)]
    top = insights("shop", window("2025-03-03", "2025-03-04"), rows, [], set(), top=2)
    assert [(r.key, r.returns) for r in top.top_reasons.by_count] == [("r0", 3), ("r1", 3)]


def test_top_skus_count_every_named_sku_but_take_amounts_only_from_single_sku_returns() -> None:
    mug, cup = Sku("sku-mug", "MUG · Mug"), Sku("sku-cup", "CUP · Cup")
    rows = [
        row("a", S.COMPLETE, "2025-03-03", skus=(mug,), refund=usd("12.50")),
        row("b", S.COMPLETE, "2025-03-03", skus=(mug, cup), refund=usd("30.00")),
        row("c", S.AFTERSALE_APPLYING, "2025-03-03", skus=(cup,)),
        row("d", S.COMPLETE, "2025-03-03", skus=(cup,), refund=usd("2.25")),
        row("e", S.AFTERSALE_APPLYING, "2025-03-03"),
    ]
    top = insights("shop", window("2025-03-03", "2025-03-04"), rows, [], set()).top_skus
    assert [(r.key, r.label, r.returns) for r in top.by_count] == [
        ("sku-cup", "CUP · Cup", 3), ("sku-mug", "MUG · Mug", 2)]
    assert [(r.key, r.amount, r.returns) for r in top.by_amount[0].items] == [
        ("sku-mug", Decimal("12.50"), 1), ("sku-cup", Decimal("2.25"), 1)]
    assert (top.unknown, top.amount_left_out) == (1, 1)


# ------------------------------------------------------------------------------- durations


def test_quantiles_interpolate_between_the_nearest_ranks() -> None:
    assert quantile([1, 2], MEDIAN) == 1.5
    assert quantile([7], P90) == 7
    assert quantile([60 * n for n in range(1, 11)], MEDIAN) == 330
    assert quantile([60 * n for n in range(1, 11)], P90) == 546  # exactly: 540 + 0.1 * 60


def test_time_to_decision_is_the_first_status_after_applying_and_to_refund_is_complete() -> None:
    rows = [row(f"r{n}", S.COMPLETE, "2025-03-03T00:00:00") for n in range(10)]
    history = []
    for n in range(10):  # decided after n+1 hours, refunded a day after the request
        history += [
            event(f"r{n}", S.AFTERSALE_APPLYING, "2025-03-03T00:00:00"),
            event(f"r{n}", S.AFTERSALE_SUCCESS, f"2025-03-03T{n + 1:02d}:00:00"),
            event(f"r{n}", S.COMPLETE, "2025-03-04T00:00:00"),
        ]
    view = insights("shop", window("2025-03-03", "2025-03-04"), rows, history, set())
    decision, refund = view.durations.to_decision, view.durations.to_refund
    assert (decision.returns, decision.median_s, decision.p90_s) == (10, 19_800, 32_760)
    assert (refund.returns, refund.median_s, refund.p90_s) == (10, 86_400, 86_400)


def test_a_decision_is_read_from_the_history_in_fold_order() -> None:
    marks = milestones([
        # an appeal: the first decision (the rejection) counts, not the later approval
        event("appeal", S.AFTERSALE_APPLYING, "2025-03-03T00:00:00"),
        event("appeal", S.AFTERSALE_SUCCESS, "2025-03-03T05:00:00"),
        event("appeal", S.AFTERSALE_REJECT_APPLICATION, "2025-03-03T01:00:00"),
        event("appeal", S.AFTERSALE_APPLYING, "2025-03-03T02:00:00"),
        # a missed webhook: the inferred AFTERSALE_SUCCESS counts at its event's time
        event("gap", S.AFTERSALE_APPLYING, "2025-03-03T00:00:00"),
        event("gap", S.COMPLETE, "2025-03-03T03:00:00", S.AFTERSALE_SUCCESS),
        # the buyer withdrew: no decision of the seller's
        event("cancel", S.AFTERSALE_APPLYING, "2025-03-03T00:00:00"),
        event("cancel", S.CANCEL_SUCCESS, "2025-03-03T04:00:00"),
        # same second: the lifecycle rank orders them
        event("tie", S.AFTERSALE_RETURNING, "2025-03-03T06:00:00", rank=2),
        event("tie", S.AFTERSALE_APPLYING, "2025-03-03T06:00:00", rank=0),
    ])
    assert marks["appeal"].decision == at("2025-03-03T01:00:00")
    assert marks["appeal"].refund is None
    assert (marks["gap"].decision, marks["gap"].refund) == (at("2025-03-03T03:00:00"),) * 2
    assert marks["cancel"].decision is None
    assert marks["tie"].decision == at("2025-03-03T06:00:00")
    assert marks["tie"].first_event == at("2025-03-03T06:00:00")


def test_durations_are_empty_without_history_and_never_negative() -> None:
    rows = [row("a", S.COMPLETE, "2025-03-03T10:00:00"), row("b", request="2025-03-03")]
    history = [event("a", S.COMPLETE, "2025-03-03T09:00:00")]  # before TikTok's request time
    view = insights("shop", window("2025-03-03", "2025-03-04"), rows, history, set())
    assert (view.durations.to_refund.returns, view.durations.to_refund.median_s) == (1, 0)
    assert view.durations.to_decision.returns == 1
    empty = insights("shop", window("2025-03-03", "2025-03-04"), rows[1:], [], set())
    assert (empty.durations.to_decision.returns, empty.durations.to_decision.median_s,
            empty.durations.to_decision.p90_s) == (0, None, None)


def test_a_return_without_a_request_time_is_placed_by_its_first_event() -> None:
    rows = [row("late"), row("began-before"), row("no-history")]
    history = [
        event("late", S.AFTERSALE_APPLYING, "2025-03-03T10:00:00"),
        event("late", S.AFTERSALE_REJECT_APPLICATION, "2025-03-03T12:00:00"),
        event("began-before", S.AFTERSALE_APPLYING, "2025-03-02T10:00:00"),
        event("began-before", S.CLOSED, "2025-03-03T12:00:00"),
    ]
    view = insights("shop", window("2025-03-03", "2025-03-04"), rows, history, set())
    assert view.returns == 1
    assert view.durations.to_decision.median_s == 2 * 3600


# ------------------------------------------------------------------------------- anomalies


def test_the_anomaly_share_counts_a_return_with_either_an_anomaly_or_a_rejected_event() -> None:
    rows = [row("flagged", request="2025-03-03", anomaly=True),
            row("rejected", request="2025-03-03"),
            row("both", request="2025-03-03", anomaly=True),
            row("clean", request="2025-03-03"),
            row("other-window", request="2025-04-03", anomaly=True)]
    view = insights("shop", window("2025-03-03", "2025-03-04"), rows, [],
                    {"rejected", "both", "other-window"})
    share = view.anomalies
    assert (share.returns, share.anomaly, share.rejected_event, share.either) == (4, 2, 2, 3)
    assert share.share == 0.75
    empty = insights("shop", window("2025-03-03", "2025-03-04"), [], [], set()).anomalies
    assert (empty.returns, empty.share) == (0, 0.0)


def test_the_view_names_its_window_in_utc_and_its_time_zone() -> None:
    view = insights("shop", window("2025-03-03", "2025-03-04", KL), [], [], set())
    body = view.model_dump(mode="json", by_alias=True)
    assert (body["from"], body["to"], body["tz"]) == (
        "2025-03-03T00:00:00Z", "2025-03-04T00:00:00Z", "Asia/Kuala_Lumpur")
