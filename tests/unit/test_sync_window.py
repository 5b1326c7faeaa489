"""Pure parts of Sync Return: the window, rejection ids, error texts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.messages import EventSource, RejectionReason
from contracts.topics import SYNC_COMMANDS_TOPIC
from ingestor.rejections import Rejected, sync_rejection, undecodable_command
from ingestor.sync import (
    WindowError,
    api_error_text,
    resolve_window,
)
from ingestor.tiktok_client import TikTokApiError

NOW = 1_732_700_000
AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_first_sync_fetches_everything_up_to_this_second_and_sets_the_checkpoint() -> None:
    window = resolve_window(None, None, None, 300, NOW)
    assert (window.since, window.until, window.checkpoint_after) == (0, NOW + 1, NOW + 1)


def test_a_later_sync_resumes_the_overlap_before_the_checkpoint() -> None:
    window = resolve_window(None, None, NOW - 1000, 300, NOW)
    assert (window.since, window.until, window.checkpoint_after) == (NOW - 1300, NOW + 1, NOW + 1)


def test_the_overlap_never_goes_below_zero() -> None:
    assert resolve_window(None, None, 100, 300, NOW).since == 0


def test_explicit_bounds_win() -> None:
    window = resolve_window(10, 500, NOW - 1000, 300, NOW)
    assert (window.since, window.until) == (10, 500)
    # It ends before the checkpoint: the checkpoint stays where it is.
    assert window.checkpoint_after is None


def test_a_window_after_the_checkpoint_leaves_it_alone() -> None:
    # Syncing [checkpoint + 1000, now] would declare the gap synced: not done.
    window = resolve_window(NOW - 500, None, NOW - 2000, 300, NOW)
    assert window.checkpoint_after is None


def test_without_a_checkpoint_only_a_window_from_zero_sets_one() -> None:
    assert resolve_window(5, None, None, 300, NOW).checkpoint_after is None
    assert resolve_window(0, NOW - 50, None, 300, NOW).checkpoint_after == NOW - 50


def test_a_future_until_moves_the_checkpoint_only_to_now() -> None:
    window = resolve_window(None, NOW + 3600, NOW - 100, 300, NOW)
    assert window.until == NOW + 3600
    assert window.checkpoint_after == NOW + 1


def test_the_checkpoint_never_moves_back() -> None:
    assert resolve_window(0, NOW - 5000, NOW - 1000, 300, NOW).checkpoint_after is None


def test_since_after_until_is_refused() -> None:
    with pytest.raises(WindowError, match="after"):
        resolve_window(200, 100, None, 300, NOW)


def rejected(raw: dict[str, object]) -> Rejected:
    return Rejected(reason=RejectionReason.UNKNOWN_STATUS,
                    detail="202309 return_status 'X' unknown", raw=raw,
                    shop_id="shop-1", return_id="r1", source=EventSource.SYNC_202309)


def test_a_sync_rejection_id_depends_on_the_record_only() -> None:
    one = sync_rejection(rejected({"return_id": "r1", "return_status": "X"}), AT)
    again = sync_rejection(rejected({"return_status": "X", "return_id": "r1"}), datetime.now(UTC))
    other = sync_rejection(rejected({"return_id": "r1", "return_status": "Y"}), AT)
    assert one.rejection_id == again.rejection_id != other.rejection_id
    assert one.stage == "ingestor"
    assert one.shop_id == "shop-1"
    assert one.return_id == "r1"
    assert one.detail.startswith("sync_202309: ")
    assert one.raw is not None
    assert '"return_status":"X"' in one.raw


def test_an_undecodable_command_is_rejected_with_where_it_was() -> None:
    rejection = undecodable_command(b"\xffnot json", "invalid JSON", 3, 42, AT)
    assert rejection.reason == RejectionReason.UNDECODABLE
    assert (rejection.source_topic, rejection.source_partition, rejection.source_offset) == \
        (SYNC_COMMANDS_TOPIC, 3, 42)
    assert rejection.raw is not None
    assert rejection.raw.startswith("base64:")
    same = undecodable_command(b"\xffnot json", "other detail", 0, 0, AT)
    assert rejection.rejection_id == same.rejection_id


def test_api_errors_read_well() -> None:
    text = api_error_text(TikTokApiError(105001, "invalid access_token", False, http_status=200,
                                         request_id="req-1"))
    assert text.startswith("TikTok API refused the request: invalid access token")
    assert "code 105001" in text
    assert "request_id req-1" in text
    throttled = api_error_text(TikTokApiError(None, "HTTP 429 Too Many Requests", True,
                                              http_status=429))
    assert "rate limited" in throttled
    assert "gave up after retries" in throttled
