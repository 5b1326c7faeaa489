"""CSV export of the returns list: pure formatting of read-model documents into CSV lines.

The API streams these lines over an async MongoDB cursor, so an export is never held in
memory. Money stays the decimal string stored in the read model; times are ISO-8601 UTC.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

CSV_COLUMNS: tuple[str, ...] = (
    "order_id",
    "return_id",
    "reverse_type",
    "status",
    "refund_amount",
    "currency",
    "reason",
    "items",
    "tracking_number",
    "requested_at",
    "updated_at",
)

# A cell starting with one of these is a formula to spreadsheet programs: such text cells get a
# leading apostrophe (OWASP "CSV injection"). Amounts are written as they are.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def iso_utc(seconds: Any) -> str:
    """Unix seconds as `2024-11-27T04:00:00Z`; empty when unknown."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _items(items: Any) -> str:
    """`sku x qty` per item, `; `-separated (sku: seller SKU, else SKU id, else product name)."""
    if not isinstance(items, list):
        return ""
    parts = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        sku = item.get("seller_sku") or item.get("sku_id") or item.get("product_name") or "?"
        quantity = item.get("quantity")
        parts.append(f"{sku} x {quantity if quantity is not None else '?'}")
    return "; ".join(parts)


def csv_row(doc: Mapping[str, Any]) -> list[str]:
    details = doc.get("details")
    details = details if isinstance(details, Mapping) else {}
    refund = details.get("refund")
    refund = refund if isinstance(refund, Mapping) else {}
    amount = refund.get("amount")
    return [
        _text(doc.get("order_id")),
        _text(doc.get("return_id")),
        _text(doc.get("reverse_type")),
        _text(doc.get("status")),
        "" if amount is None else str(amount),
        _text(refund.get("currency")),
        _text(details.get("reason")),
        _text(_items(details.get("items"))),
        _text(details.get("tracking_number")),
        iso_utc(details.get("request_time")),
        iso_utc(doc.get("update_time")),
    ]


def csv_lines(rows: Iterable[list[str]]) -> str:
    """The CSV text (RFC 4180, CRLF line ends) of `rows`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows(rows)
    return buffer.getvalue()
