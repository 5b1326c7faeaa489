"""The shared contracts: committed JSON Schemas, code tables and topics."""

from __future__ import annotations

from contracts.schemas import SCHEMA_DIR, rendered
from contracts.statuses import (
    LEGACY_STATUS_CODES,
    STATUS_TABS,
    V202309_STATUS_NAMES,
    ReturnStatus,
)
from contracts.topics import EVENTS_TOPIC, FOREVER, TOPICS
from contracts.transitions import TERMINAL, TRANSITIONS


def test_committed_json_schemas_match_the_models() -> None:
    for name, text in rendered().items():
        committed = (SCHEMA_DIR / name).read_text()
        assert committed == text, f"{name} is stale: run `python -m contracts.schemas`"


def test_every_status_has_a_legacy_code_and_a_tab() -> None:
    assert set(LEGACY_STATUS_CODES.values()) == set(ReturnStatus)
    assert {status for status, _ in STATUS_TABS} == set(ReturnStatus)


def test_every_202309_status_maps_except_closed_which_has_no_equivalent() -> None:
    assert set(ReturnStatus) - set(V202309_STATUS_NAMES.values()) == {ReturnStatus.CLOSED}


def test_terminal_statuses_are_complete_closed_and_cancelled() -> None:
    assert {ReturnStatus.COMPLETE, ReturnStatus.CLOSED, ReturnStatus.CANCEL_SUCCESS} == TERMINAL
    assert set(TRANSITIONS) == set(ReturnStatus)


def test_events_topic_has_12_partitions_and_is_kept_forever() -> None:
    (events,) = [spec for spec in TOPICS if spec.name == EVENTS_TOPIC]
    assert events.partitions == 12
    assert events.config == FOREVER
