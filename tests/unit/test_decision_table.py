"""Which seller decision fits which return (contracts.decisions): DOMAIN.md's table, once."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.decisions import (
    DECISION_TABLE,
    DecisionCommand,
    SellerDecision,
    TikTokDecision,
    allowed_decisions,
    decision_id_for_key,
    tiktok_decision,
)
from contracts.statuses import ReturnStatus, ReverseType

A, R = SellerDecision.APPROVE, SellerDecision.REJECT
S, T = ReturnStatus, ReverseType


@pytest.mark.parametrize(("reverse_type", "status", "approve", "reject"), [
    (T.REFUND_ONLY, S.AFTERSALE_APPLYING, "APPROVE_REFUND", "REJECT_REFUND"),
    (T.RETURN_AND_REFUND, S.AFTERSALE_APPLYING, "APPROVE_RETURN", "REJECT_RETURN"),
    (T.RETURN_AND_REFUND, S.AFTERSALE_BUYER_SHIPPED, "APPROVE_RECEIVED_PACKAGE",
     "REJECT_RECEIVED_PACKAGE"),
])
def test_each_request_gets_tiktoks_decision_value_of_the_domain_table(
    reverse_type: ReverseType, status: ReturnStatus, approve: str, reject: str
) -> None:
    assert tiktok_decision(reverse_type, status, A) == TikTokDecision(approve)
    assert tiktok_decision(reverse_type, status, R) == TikTokDecision(reject)
    assert allowed_decisions(reverse_type, status) == (A, R)


def test_no_other_status_or_type_offers_a_decision() -> None:
    offered = {(t, s) for t in ReverseType for s in ReturnStatus if allowed_decisions(t, s)}
    assert offered == set(DECISION_TABLE)
    for t in ReverseType:
        for s in ReturnStatus:
            if (t, s) not in DECISION_TABLE:
                assert tiktok_decision(t, s, A) is None
                assert tiktok_decision(t, s, R) is None


def test_a_return_of_unknown_type_offers_no_decision() -> None:
    assert allowed_decisions(None, S.AFTERSALE_APPLYING) == ()
    assert tiktok_decision(None, S.AFTERSALE_APPLYING, A) is None


def test_terminal_and_waiting_statuses_offer_nothing() -> None:
    for status in (S.COMPLETE, S.CLOSED, S.CANCEL_SUCCESS, S.AFTERSALE_RETURNING,
                   S.AFTERSALE_REJECT_APPLICATION, S.AFTERSALE_SUCCESS):
        assert allowed_decisions(T.RETURN_AND_REFUND, status) == ()


def test_a_refund_only_request_never_decides_on_a_parcel() -> None:
    assert allowed_decisions(T.REFUND_ONLY, S.AFTERSALE_BUYER_SHIPPED) == ()


def test_the_same_idempotency_key_names_the_same_decision_on_one_return_only() -> None:
    first = decision_id_for_key("shop", "r1", "click-1")
    assert first == decision_id_for_key("shop", "r1", "click-1")
    assert first != decision_id_for_key("shop", "r2", "click-1")
    assert first != decision_id_for_key("shop", "r1", "click-2")


def _command(**changes: object) -> DecisionCommand:
    fields: dict[str, object] = {
        "decision_id": decision_id_for_key("shop", "r1", "k"), "shop_id": "shop",
        "return_id": "r1", "decision": "approve", "reverse_type": "REFUND_ONLY",
        "status": "AFTERSALE_APPLYING", "return_update_time": 1_732_600_000, "label": "ops",
    }
    return DecisionCommand.model_validate(fields | changes)


def test_a_rejection_needs_a_reason_and_an_approval_takes_none() -> None:
    assert _command().key == "shop:r1"
    assert _command(decision="reject", reason="seller_reject_reason_1").reason
    with pytest.raises(ValidationError, match="needs a reason"):
        _command(decision="reject")
    with pytest.raises(ValidationError, match="takes no reason"):
        _command(reason="anything")
