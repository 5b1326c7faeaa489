"""The insights of a shop's returns, computed from plain rows: no I/O here.

The rows are what MongoDB (or FerretDB, which has no date operators, no Decimal128 and no
percentiles) can hand over cheaply: one `ReturnRow` per return of the shop that may fall in the
window, with the milestones of its history that the state machine keeps on its document
(`contracts.read_model.Milestones`), and the keys of the returns with a rejected event.
Everything else (day and week buckets in a time zone, money as `Decimal`, medians and
percentiles) is computed here. `milestones` gives the same marks from a history's applied
events (`HistoryRow`s), for rows that carry none.

Definitions (README, "Insights"):
- a return's request time is TikTok's (`details.request_time`) or, when TikTok never told it
  (a legacy webhook carries none), the time of its first applied event;
- "refund" is the amount of a return that reached COMPLETE, in its currency;
- time to decision runs from the request to the first status after AFTERSALE_APPLYING in the
  history (an inferred status counts, at the time of the event that implied it); a buyer's
  cancellation (CANCEL_SUCCESS) is no decision of the seller's, so such a return is not measured;
- top SKUs count every return naming a SKU; their amounts come only from returns naming one SKU.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from contracts.read_model import Milestones
from contracts.statuses import ReturnStatus
from query_api.insights.views import (
    AmountRank,
    AnomalyShare,
    CountRank,
    CurrencyRanking,
    CurrencyRefunds,
    DayOpened,
    Duration,
    Durations,
    InsightsView,
    TopList,
    WeekRefund,
)

TOP_DEFAULT = 10
MEDIAN, P90 = Fraction(1, 2), Fraction(9, 10)
NO_DECISION = ReturnStatus.CANCEL_SUCCESS  # the buyer withdrew: the seller decided nothing


@dataclass(frozen=True)
class Refund:
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class Sku:
    key: str  # sku_id, else seller_sku
    label: str


@dataclass(frozen=True)
class ReturnRow:
    """What the insights need of one return's document."""

    key: str
    status: ReturnStatus
    request_time: int | None
    refund: Refund | None = None
    reason: str | None = None
    reason_text: str | None = None
    skus: tuple[Sku, ...] = ()  # distinct
    anomaly: bool = False
    milestones: Milestones | None = None  # as kept on its document; None: not kept

    @property
    def refunded(self) -> Refund | None:
        """The refund, when the return reached COMPLETE (a terminal status)."""
        return self.refund if self.status == ReturnStatus.COMPLETE else None


@dataclass(frozen=True)
class HistoryRow:
    """One applied event of a return's history."""

    return_key: str
    update_time: int
    rank: int
    status: ReturnStatus
    inferred: tuple[ReturnStatus, ...] = ()  # statuses missed before this one


@dataclass(frozen=True)
class Window:
    """Request times `start` <= t < `end` (unix seconds), bucketed by day and week in `zone`."""

    start: int
    end: int
    zone: ZoneInfo

    def contains(self, t: int) -> bool:
        return self.start <= t < self.end

    def day(self, t: int) -> date:
        return datetime.fromtimestamp(t, UTC).astimezone(self.zone).date()

    def days(self) -> list[date]:
        first, last = self.day(self.start), self.day(max(self.start, self.end - 1))
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def weeks(self) -> list[date]:
        days = self.days()
        first, last = week_of(days[0]), week_of(days[-1])
        return [first + timedelta(weeks=n) for n in range((last - first).days // 7 + 1)]


def week_of(day: date) -> date:
    """The Monday of the (ISO) week that holds `day`."""
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class Marks:
    """When a return first showed up, was decided on and was refunded."""

    first_event: int  # its first applied event
    decision: int | None  # None: not yet, or the buyer withdrew
    refund: int | None

    @classmethod
    def of(cls, kept: Milestones) -> Marks:
        decision = None if kept.decided_as is NO_DECISION else kept.decided_at
        return cls(kept.opened_at, decision, kept.refunded_at)


def milestones(history: Iterable[HistoryRow]) -> dict[str, Marks]:
    """Per return key, from its applied events."""
    by_return: dict[str, list[HistoryRow]] = defaultdict(list)
    for row in history:
        by_return[row.return_key].append(row)
    return {key: Marks.of(milestones_of(rows)) for key, rows in by_return.items()}


def milestones_of(applied: Iterable[HistoryRow]) -> Milestones:
    """The milestones of one return's applied events (at least one), in fold order
    (update_time, rank), by the rule the state machine keeps them with."""
    rows = sorted(applied, key=lambda r: (r.update_time, r.rank))
    kept = Milestones(opened_at=rows[0].update_time)
    for row in rows:
        kept = kept.after((*row.inferred, row.status), row.update_time)
    return kept


def requested_in(
    rows: Iterable[ReturnRow], marks: dict[str, Marks], window: Window
) -> list[tuple[ReturnRow, int]]:
    """The returns requested in the window, each with its request time."""
    found = []
    for row in rows:
        first = marks.get(row.key)
        at = row.request_time if row.request_time is not None else (
            first.first_event if first is not None else None)
        if at is not None and window.contains(at):
            found.append((row, at))
    return found


def opened_per_day(requested: list[tuple[ReturnRow, int]], window: Window) -> list[DayOpened]:
    per_day: dict[date, Counter[ReturnStatus]] = defaultdict(Counter)
    for row, at in requested:
        per_day[window.day(at)][row.status] += 1
    order = list(ReturnStatus)
    return [
        DayOpened(day=day, total=sum(per_day[day].values()),
                  by_status={s: n for s, n in sorted(per_day[day].items(),
                                                     key=lambda sn: order.index(sn[0]))})
        for day in window.days()
    ]


def refunds_per_week(
    requested: list[tuple[ReturnRow, int]], window: Window
) -> list[CurrencyRefunds]:
    """Per currency, the refunds of the returns requested in each week of the window."""
    amounts: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    counts: dict[str, Counter[date]] = defaultdict(Counter)
    for row, at in requested:
        refund = row.refunded
        if refund is not None:
            week = week_of(window.day(at))
            amounts[refund.currency][week] += refund.amount
            counts[refund.currency][week] += 1
    weeks = window.weeks()
    return [
        CurrencyRefunds(
            currency=currency,
            total=sum(amounts[currency].values(), Decimal(0)),
            returns=sum(counts[currency].values()),
            weeks=[WeekRefund(week=w, amount=amounts[currency].get(w, Decimal(0)),
                              returns=counts[currency][w]) for w in weeks],
        )
        for currency in sorted(amounts)
    ]


# A row's keys, each with its label when the row tells one (the most common label wins).
Keys = Callable[[ReturnRow], tuple[tuple[str, str | None], ...]]


def ranked(rows: list[ReturnRow], keys_of: Keys, top: int, *, amount_if_single: bool) -> TopList:
    """The top keys by returns, and per currency by refunded amount. With `amount_if_single`,
    a refund counts only for a row that names one key (it is not split between several)."""
    counts: Counter[str] = Counter()
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    amounts: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    refunded: dict[str, Counter[str]] = defaultdict(Counter)
    unknown = left_out = 0
    for row in rows:
        keys = keys_of(row)
        if not keys:
            unknown += 1
        for key, label in keys:
            counts[key] += 1
            if label:
                labels[key][label] += 1
        refund = row.refunded
        if refund is None or not keys:
            continue
        if amount_if_single and len(keys) > 1:
            left_out += 1
            continue
        for key, _ in keys:
            amounts[refund.currency][key] += refund.amount
            refunded[refund.currency][key] += 1

    def label_of(key: str) -> str:
        told = labels[key].items()
        return min(told, key=lambda item: (-item[1], item[0]))[0] if told else key

    by_count = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return TopList(
        by_count=[CountRank(key=k, label=label_of(k), returns=n) for k, n in by_count],
        by_amount=[
            CurrencyRanking(currency=currency, items=[
                AmountRank(key=k, label=label_of(k), amount=a, returns=refunded[currency][k])
                for k, a in sorted(amounts[currency].items(),
                                   key=lambda item: (-item[1], item[0]))[:top]
            ])
            for currency in sorted(amounts)
        ],
        unknown=unknown,
        amount_left_out=left_out,
    )


def reason_keys(row: ReturnRow) -> tuple[tuple[str, str | None], ...]:
    return ((row.reason, row.reason_text),) if row.reason else ()


def sku_keys(row: ReturnRow) -> tuple[tuple[str, str | None], ...]:
    return tuple((sku.key, sku.label) for sku in row.skus)


def quantile(ordered: list[int], q: Fraction) -> float:
    """The q-quantile of sorted values, interpolated linearly between the two nearest ranks
    (the median of [1, 2] is 1.5; numpy's default), computed exactly and then rounded once."""
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def duration(seconds: Iterable[int]) -> Duration:
    ordered = sorted(max(0, s) for s in seconds)
    if not ordered:
        return Duration(returns=0, median_s=None, p90_s=None)
    return Duration(returns=len(ordered), median_s=quantile(ordered, MEDIAN),
                    p90_s=quantile(ordered, P90))


def durations(requested: list[tuple[ReturnRow, int]], marks: dict[str, Marks]) -> Durations:
    decisions, refunds = [], []
    for row, at in requested:
        mark = marks.get(row.key)
        if mark is None:
            continue
        if mark.decision is not None:
            decisions.append(mark.decision - at)
        if mark.refund is not None:
            refunds.append(mark.refund - at)
    return Durations(to_decision=duration(decisions), to_refund=duration(refunds))


def anomaly_share(rows: list[ReturnRow], rejected: set[str]) -> AnomalyShare:
    anomaly = sum(1 for r in rows if r.anomaly)
    with_rejected = sum(1 for r in rows if r.key in rejected)
    either = sum(1 for r in rows if r.anomaly or r.key in rejected)
    return AnomalyShare(returns=len(rows), anomaly=anomaly, rejected_event=with_rejected,
                        either=either, share=either / len(rows) if rows else 0.0)


def insights(
    shop_id: str,
    window: Window,
    rows: Iterable[ReturnRow],
    history: Iterable[HistoryRow],
    rejected: set[str],
    *,
    top: int = TOP_DEFAULT,
) -> InsightsView:
    """Every chart of the view, for the returns of `rows` requested in the window; the
    milestones of a row that carries none come from `history`."""
    rows = list(rows)
    marks = milestones(history) | {
        row.key: Marks.of(row.milestones) for row in rows if row.milestones is not None}
    requested = requested_in(rows, marks, window)
    in_window = [row for row, _ in requested]
    return InsightsView(
        shop_id=shop_id,
        from_=datetime.fromtimestamp(window.start, UTC),
        to=datetime.fromtimestamp(window.end, UTC),
        tz=window.zone.key,
        returns=len(in_window),
        opened_per_day=opened_per_day(requested, window),
        refunds_per_week=refunds_per_week(requested, window),
        top_reasons=ranked(in_window, reason_keys, top, amount_if_single=False),
        top_skus=ranked(in_window, sku_keys, top, amount_if_single=True),
        durations=durations(requested, marks),
        anomalies=anomaly_share(in_window, rejected),
    )
