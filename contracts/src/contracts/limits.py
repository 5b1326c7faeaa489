"""What a value may be before it enters the system: the bounds live here, once.

Every service that takes input from outside (webhooks, TikTok's API, a replayed topic) checks
it against these types, through the messages of `contracts.messages`, which use them. A value
outside them is refused where it arrives (and kept on the rejected topic), never stored: an
impossible value must not reach MongoDB, which cannot hold integers past int64 and would wedge
the consumer that tries to write it.

- times (unix seconds): from 2016-01-01 (before TikTok Shop existed) to now + 1 day (clock skew);
- identifiers: 1..128 characters, no control characters;
- amounts: finite decimals, at least 0, at most 12 digits before the point and 6 after;
- counts (quantities): 0 .. int64 max;
- free text: bounded in length.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

EARLIEST_TIME = int(datetime(2016, 1, 1, tzinfo=UTC).timestamp())  # 1451606400
FUTURE_SLACK_S = 86_400  # a time may be this far ahead of our clock
INT64_MAX = 2**63 - 1  # MongoDB's largest integer

MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 512  # one-line text: product and SKU names, reason codes, actors
MAX_TEXT_LENGTH = 4096  # free text: a buyer's reason
MAX_URL_LENGTH = 2048
MAX_ITEMS = 1000  # returned items of one return

AMOUNT_WHOLE_DIGITS = 12
AMOUNT_DECIMAL_PLACES = 6

# For the JSON Schemas: what `_no_control_characters` checks (Unicode category Cc).
_NO_CONTROL_PATTERN = {"pattern": r"^[^\x00-\x1f\x7f-\x9f]*$"}


def latest_time() -> int:
    """The latest acceptable time, now: our clock plus FUTURE_SLACK_S."""
    return int(time.time()) + FUTURE_SLACK_S


def _not_in_the_future(value: int) -> int:
    latest = latest_time()
    if value > latest:
        raise ValueError(f"must be a unix time no later than now + 1 day ({latest})")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, exactly


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


UnixTime = Annotated[
    int,
    Field(ge=EARLIEST_TIME, description="unix seconds, from 2016-01-01 to now + 1 day"),
    AfterValidator(_not_in_the_future),
]
"""A time TikTok reports (update, request, create time)."""

Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
    Field(json_schema_extra=_NO_CONTROL_PATTERN),
    AfterValidator(_no_control_characters),
]
"""An identifier (shop, return, order, notification, SKU, tracking number)."""

Code = Id
"""A name from a closed vocabulary as received (a status or type TikTok sends)."""

Name = Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH)]
Url = Annotated[
    str,
    StringConstraints(max_length=MAX_URL_LENGTH),
    Field(json_schema_extra=_NO_CONTROL_PATTERN),
    AfterValidator(_no_control_characters),
]

Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A quantity."""

Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
"""An integer code as received (a legacy status or type code)."""

Amount = Annotated[
    Decimal,
    Field(
        ge=0,
        allow_inf_nan=False,
        max_digits=AMOUNT_WHOLE_DIGITS + AMOUNT_DECIMAL_PLACES,
        decimal_places=AMOUNT_DECIMAL_PLACES,
    ),
]
"""Money: a finite decimal, never a float."""

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""ISO 4217."""
