"""What `GET /api/v1/insights` answers. Money is a `Decimal` (a decimal string in JSON), one
figure per currency: amounts of different currencies are never added together."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from contracts.statuses import ReturnStatus


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class DayOpened(_View):
    day: date = Field(description="a day of the window, in `tz`")
    total: int = Field(description="returns requested that day")
    by_status: dict[ReturnStatus, int] = Field(
        description="those returns by their current status (statuses with none left out)"
    )


class WeekRefund(_View):
    week: date = Field(description="the Monday (in `tz`) of a week of the window")
    amount: Decimal = Field(description="refunded (reached COMPLETE), of returns requested "
                            "that week")
    returns: int


class CurrencyRefunds(_View):
    currency: str
    total: Decimal
    returns: int = Field(description="returns refunded in this currency")
    weeks: list[WeekRefund] = Field(description="every week of the window, oldest first")


class CountRank(_View):
    key: str = Field(description="the reason code, or the SKU id (seller SKU when no id)")
    label: str = Field(description="what the seller reads")
    returns: int


class AmountRank(_View):
    key: str
    label: str
    amount: Decimal = Field(description="refunded (reached COMPLETE)")
    returns: int = Field(description="refunded returns behind the amount")


class CurrencyRanking(_View):
    currency: str
    items: list[AmountRank] = Field(description="largest amount first")


class TopList(_View):
    by_count: list[CountRank] = Field(description="most returns first")
    by_amount: list[CurrencyRanking] = Field(description="one ranking per refund currency")
    unknown: int = Field(description="returns of the window that name none (not ranked)")
    amount_left_out: int = Field(
        default=0,
        description="refunded returns left out of `by_amount`: for SKUs, those that name "
        "several SKUs (their refund is not split between them)",
    )


class Duration(_View):
    returns: int = Field(description="returns measured")
    median_s: float | None = Field(description="seconds; null when none was measured")
    p90_s: float | None = Field(description="90th percentile (linear interpolation), seconds")


class Durations(_View):
    to_decision: Duration = Field(
        description="from the request to the first status after AFTERSALE_APPLYING in the "
        "history (a buyer's cancellation is no decision and is not measured)"
    )
    to_refund: Duration = Field(description="from the request to COMPLETE")


class AnomalyShare(_View):
    returns: int
    anomaly: int = Field(description="returns flagged with an anomaly")
    rejected_event: int = Field(description="returns with a rejected event in their history")
    either: int = Field(description="returns with either")
    share: float = Field(description="`either` / `returns` (0 when there are none)")


class InsightsView(_View):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    shop_id: str
    from_: datetime = Field(alias="from", description="request time from (inclusive), UTC")
    to: datetime = Field(description="request time to (exclusive), UTC")
    tz: str = Field(description="the IANA time zone of the day and week buckets")
    returns: int = Field(description="returns requested in the window")
    opened_per_day: list[DayOpened] = Field(description="every day of the window, oldest first")
    refunds_per_week: list[CurrencyRefunds] = Field(description="one series per currency")
    top_reasons: TopList
    top_skus: TopList
    durations: Durations
    anomalies: AnomalyShare
