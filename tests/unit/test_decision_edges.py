"""The pure edges of acting on returns: who may act, TikTok's requests for a decision, the
Needs-action query, the seller's language, and the deadline watch's counts and alerts."""

from __future__ import annotations

import hashlib
import hmac
from uuid import uuid4

import pytest
from fastapi import HTTPException

from contracts.decisions import DecisionCommand
from ingestor.deadline_watch import alert, signed, windows
from ingestor.tiktok_decisions import decision_request
from query_api.auth import Principal, TokenGrant, find_principal, grant_of
from query_api.deadlines import (
    DeadlineCursor,
    NeedsActionParams,
    decode_deadline_cursor,
    encode_deadline_cursor,
    needs_action_filter,
    next_deadline_cursor,
)
from query_api.queries import BadCursor
from query_api.reject_reasons import locale_of

NOW = 1_750_000_000
DAY = 86_400


def command(decision: str = "approve", **changes: object) -> DecisionCommand:
    fields: dict[str, object] = {
        "decision_id": str(uuid4()), "shop_id": "shop", "return_id": "r1",
        "decision": decision, "reverse_type": "RETURN_AND_REFUND",
        "status": "AFTERSALE_BUYER_SHIPPED", "return_update_time": NOW, "label": "ops",
    }
    return DecisionCommand.model_validate(fields | changes)


# ------------------------------------------------------------------------------ who may act

def test_a_list_of_shops_is_a_read_only_grant_labelled_without_the_token() -> None:
    grant = grant_of("secret-token", ["shop"])
    assert grant.role == "read"
    assert grant.label is not None
    assert "secret-token" not in grant.label
    named = grant_of("t", TokenGrant(shops=["*"], role="act", label="Ops"))
    assert (named.role, named.label) == ("act", "Ops")


def test_only_an_acting_token_of_the_shop_may_decide() -> None:
    acting = Principal(frozenset({"shop"}), "act", "Ops")
    assert acting.require_act("shop") == "shop"
    with pytest.raises(HTTPException) as other_shop:
        acting.require_act("other")
    assert other_shop.value.status_code == 403
    reader = Principal(frozenset({"*"}), "read", "BI")
    assert reader.require("shop") == "shop"
    with pytest.raises(HTTPException) as read_only:
        reader.require_act("shop")
    assert read_only.value.status_code == 403
    assert "may read but not act" in str(read_only.value.detail)


def test_the_presented_token_finds_its_grant() -> None:
    tokens = {"a": TokenGrant(shops=["s"], role="act", label="A")}
    found = find_principal(tokens, "a")
    assert found == Principal(frozenset({"s"}), "act", "A")
    assert find_principal(tokens, "b") is None


# ------------------------------------------------------------------------------ TikTok's side

def test_a_202309_decision_carries_the_tables_value_and_its_id_as_idempotency_key() -> None:
    approve = command()
    path, body, query = decision_request(approve, "202309")
    assert path == "/return_refund/202309/returns/r1/approve"
    assert body == {"decision": "APPROVE_RECEIVED_PACKAGE"}
    assert query == {"idempotency_key": str(approve.decision_id)}
    reject = command("reject", reason="seller_reject_receive_wrong_item", comment="photos")
    path, body, _ = decision_request(reject, "202309")
    assert path.endswith("/reject")
    assert body == {"decision": "REJECT_RECEIVED_PACKAGE",
                    "reject_reason": "seller_reject_receive_wrong_item", "comment": "photos"}


def test_a_legacy_decision_confirms_or_rejects_the_reverse_order() -> None:
    assert decision_request(command(), "legacy") == (
        "/api/reverse/reverse_request/confirm", {"reverse_order_id": "r1"}, {})
    path, body, _ = decision_request(command("reject", reason="x"), "legacy")
    assert path == "/api/reverse/reverse_request/reject"
    assert body == {"reverse_order_id": "r1", "reverse_reject_reason_key": "x"}


def test_a_decision_that_does_not_fit_is_never_sent() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        decision_request(command(status="COMPLETE"), "202309")


# ------------------------------------------------------------------------------ Needs action

def test_needs_action_reads_by_equality_and_pages_by_deadline() -> None:
    assert needs_action_filter(NeedsActionParams(shop_id="s")) == {
        "action_due": True, "shop_id": "s"}
    after = DeadlineCursor(NOW, "s:r9")
    query = needs_action_filter(NeedsActionParams(due_before=NOW + DAY, after=after))
    assert query["action_deadline"] == {"$lt": NOW + DAY}
    assert query["$or"] == [{"action_deadline": {"$gt": NOW}},
                            {"action_deadline": NOW, "_id": {"$gt": "s:r9"}}]
    assert decode_deadline_cursor(encode_deadline_cursor(after)) == after
    with pytest.raises(BadCursor):
        decode_deadline_cursor(encode_deadline_cursor(after)[:-3] + "xyz")
    docs = [{"_id": "a", "action_deadline": 1}, {"_id": "b", "action_deadline": 2}]
    cursor = next_deadline_cursor(docs, 1)
    assert cursor is not None
    assert decode_deadline_cursor(cursor) == DeadlineCursor(1, "a")
    assert next_deadline_cursor(docs, 2) is None


@pytest.mark.parametrize(("header", "locale"), [
    (None, "en-US"), ("", "en-US"), ("de-DE,de;q=0.9,en;q=0.8", "de-DE"),
    ("*", "en-US"), ("ms-MY;q=0.9", "ms-MY"), ("<script>", "en-US"),
])
def test_reject_reasons_are_asked_in_the_sellers_first_language(
    header: str | None, locale: str
) -> None:
    assert locale_of(header) == locale


# ------------------------------------------------------------------------------ deadline watch

def due(return_id: str, deadline: int, shop: str = "s") -> dict[str, object]:
    return {"_id": f"{shop}:{return_id}", "shop_id": shop, "return_id": return_id,
            "order_id": "o", "status": "AFTERSALE_APPLYING", "action_deadline": deadline,
            "details": {"next_actions": [{"action": "SELLER_RESPOND_REFUND",
                                          "deadline": deadline}]}}


def test_returns_are_counted_past_and_within_24h_of_their_deadline_per_shop() -> None:
    docs = [due("a", NOW - 1), due("b", NOW + 10), due("c", NOW + DAY), due("d", NOW + DAY + 1),
            due("e", NOW + 5, shop="t")]
    assert windows(docs, NOW) == {"s": {"past": 1, "within_24h": 2},
                                  "t": {"past": 0, "within_24h": 1}}


def test_only_a_return_in_its_last_24h_is_announced_once_per_deadline() -> None:
    found = alert(due("b", NOW + 3600), NOW)
    assert found is not None
    assert found["_id"] == f"s:b:{NOW + 3600}"
    assert found["action"] == "SELLER_RESPOND_REFUND"
    assert alert(due("a", NOW - 1), NOW) is None  # too late to warn
    assert alert(due("d", NOW + DAY + 1), NOW) is None  # not yet


def test_the_seller_can_check_the_webhooks_signature() -> None:
    headers = signed("secret", b'{"x":1}', NOW)
    expected = hmac.new(b"secret", f"{NOW}.".encode() + b'{"x":1}', hashlib.sha256).hexdigest()
    assert headers["X-Returns-Signature"] == expected
    assert headers["X-Returns-Timestamp"] == str(NOW)
