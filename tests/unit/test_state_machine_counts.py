"""The per-day histogram of a counts document (pure): how a batch's change is added to it, and
how it is stored, as one text, and read back, also as written before (nested fields)."""

from __future__ import annotations

import json

from contracts.read_model import DAY_S, CountsDocument, days_text
from state_machine.counts import days_after

D0 = 1_732_579_200  # a day's first second (UTC)


def test_a_batch_change_adds_to_the_days_and_drops_what_reaches_zero() -> None:
    days = {str(D0): {"AFTERSALE_APPLYING": 2, "COMPLETE": 1}, str(D0 + DAY_S): {"CLOSED": 1}}
    after = days_after(days, {(D0, "AFTERSALE_APPLYING"): -1, (D0, "COMPLETE"): -1,
                              (D0 + DAY_S, "CLOSED"): -1, (D0 + 2 * DAY_S, "COMPLETE"): 2})
    assert after == {str(D0): {"AFTERSALE_APPLYING": 1}, str(D0 + 2 * DAY_S): {"COMPLETE": 2}}
    assert days[str(D0)] == {"AFTERSALE_APPLYING": 2, "COMPLETE": 1}, "the cached days changed"


def test_the_days_are_stored_as_one_compact_text_that_reads_back_equal() -> None:
    days = {str(D0 + DAY_S): {"COMPLETE": 3, "CLOSED": 0}, str(D0): {"CLOSED": 1},
            str(D0 + 2 * DAY_S): {}}
    text = days_text(days)
    assert text == json.dumps({str(D0): {"CLOSED": 1}, str(D0 + DAY_S): {"COMPLETE": 3}},
                              separators=(",", ":"))
    stored = {"shop_id": "s", "partition": 0, "offset": 7, "counts": {}, "days": text}
    assert CountsDocument.model_validate(stored).days == {str(D0): {"CLOSED": 1},
                                                          str(D0 + DAY_S): {"COMPLETE": 3}}


def test_a_counts_document_with_nested_days_as_written_before_reads_the_same() -> None:
    nested = {str(D0): {"CLOSED": 1}}
    doc = {"shop_id": "s", "partition": 0, "offset": 7, "counts": {"CLOSED": 1}}
    assert (CountsDocument.model_validate(doc | {"days": nested})
            == CountsDocument.model_validate(doc | {"days": days_text(nested)}))
