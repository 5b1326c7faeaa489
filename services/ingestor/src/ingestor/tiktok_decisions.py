"""Seller decisions and reject reasons on TikTok's side, for both API generations, behind one
interface: `send_decision` and `reject_reasons` (each one call through `TikTokShopClient.call`,
so signed, paced and retried like a search).

202309 (DOMAIN.md, "Seller decisions"): `approve` / `reject` with the `decision` value of
`contracts.decisions` and `idempotency_key` = the decision id, so a decision sent again after a
crash is one decision at TikTok; reject reasons by `GET reject_reasons`. Legacy: `confirm` /
`reject` with the reverse order id (less certain, as DOMAIN.md says; it has no idempotency key).
Names TikTok's public clients disagree on are constants here, in one place.
"""

from __future__ import annotations

from typing import Any

from contracts.decisions import DecisionCommand, RejectReason, SellerDecision, tiktok_decision
from ingestor.tiktok_client import TikTokApiError, TikTokShopClient

V202309_APPROVE_PATH = "/return_refund/202309/returns/{return_id}/approve"
V202309_REJECT_PATH = "/return_refund/202309/returns/{return_id}/reject"
V202309_REJECT_REASONS_PATH = "/return_refund/202309/reject_reasons"
V202309_REJECT_REASONS_ID_PARAM = "return_or_cancel_id"  # the query name is not certain
LEGACY_CONFIRM_PATH = "/api/reverse/reverse_request/confirm"
LEGACY_REJECT_PATH = "/api/reverse/reverse_request/reject"
LEGACY_REJECT_REASONS_PATH = "/api/reverse/reverse_reason/list"


def decision_request(command: DecisionCommand, api_version: str
                     ) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(path, body, query) of the call that carries out a decision. Pure."""
    approve = command.decision is SellerDecision.APPROVE
    if api_version == "legacy":
        body: dict[str, Any] = {"reverse_order_id": command.return_id}
        if not approve:
            body["reverse_reject_reason_key"] = command.reason
            if command.comment:
                body["reverse_reject_comments"] = command.comment
        return (LEGACY_CONFIRM_PATH if approve else LEGACY_REJECT_PATH), body, {}
    value = tiktok_decision(command.reverse_type, command.status, command.decision)
    if value is None:
        raise ValueError(f"{command.decision.value} does not fit a {command.reverse_type.value} "
                         f"request in {command.status.value}")
    body = {"decision": value.value}
    if not approve:
        body["reject_reason"] = command.reason
        if command.comment:
            body["comment"] = command.comment
    path = (V202309_APPROVE_PATH if approve else V202309_REJECT_PATH).format(
        return_id=command.return_id)
    return path, body, {"idempotency_key": str(command.decision_id)}


async def send_decision(client: TikTokShopClient, command: DecisionCommand) -> None:
    """Carry out one decision; `TikTokApiError` when TikTok refuses it (or cannot be reached)."""
    path, body, query = decision_request(command, client.config.api_version)
    await client.call("POST", path, body, query)


def _reasons(data: dict[str, Any], key: str, name_key: str, text_key: str
             ) -> list[RejectReason]:
    entries = data.get(key) or []
    if not isinstance(entries, list):
        raise TikTokApiError(None, f"data.{key} is not a list", False)
    reasons = []
    for entry in entries:
        if isinstance(entry, dict) and entry.get(name_key):
            name = str(entry[name_key])
            reasons.append(RejectReason(name=name, text=str(entry.get(text_key) or name)))
    return reasons


async def reject_reasons(client: TikTokShopClient, return_id: str, locale: str
                         ) -> list[RejectReason]:
    """TikTok's reject reasons for one request, in `locale`."""
    if client.config.api_version == "legacy":
        data = await client.call("POST", LEGACY_REJECT_REASONS_PATH,
                                 {"reverse_order_id": return_id, "language": locale})
        return _reasons(data, "reverse_reason_list", "reverse_reason_key", "reverse_reason")
    data = await client.call("GET", V202309_REJECT_REASONS_PATH, None,
                             {V202309_REJECT_REASONS_ID_PARAM: return_id, "locale": locale})
    return _reasons(data, "reasons", "name", "text")
