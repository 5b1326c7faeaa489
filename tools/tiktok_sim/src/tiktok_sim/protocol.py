"""TikTok's side of the wire: error codes, request and webhook signatures, record formats.

The simulator implements TikTok's rules independently of the ingestor (it must not import it),
so the two check each other. TikTok's status and type codes are the simulator's own
(`tiktok_sim.codes`), never taken from `contracts`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Literal

from contracts.statuses import ReturnStatus, ReverseType
from tiktok_sim.codes import (
    LEGACY_CODE_OF_STATUS,
    LEGACY_TYPE_CODE_OF,
    V202309_NAME_OF_STATUS,
    V202309_TYPE_NAME_OF,
)

ApiVersion = Literal["legacy", "202309"]

LEGACY_SEARCH_PATH = "/api/reverse/reverse_order/list"
V202309_SEARCH_PATH = "/return_refund/202309/returns/search"
LEGACY_PAGE_SIZE_MAX = 100
V202309_PAGE_SIZE_MAX = 50

# Refusals: HTTP 200 with a non-zero code, as TikTok answers them.
OK = 0
ERR_INVALID_PARAMS = 36009001
ERR_RATE_LIMITED = 36009004
ERR_INVALID_ACCESS_TOKEN = 105001
ERR_ACCESS_TOKEN_EXPIRED = 105002
ERR_INVALID_SIGNATURE = 106001
ERR_INVALID_APP_KEY = 106002
ERR_TIMESTAMP_EXPIRED = 106003
ERR_INVALID_SHOP_CIPHER = 106011
ERR_WRONG_API_VERSION = 36009011

MESSAGES: Mapping[int, str] = {
    OK: "Success",
    ERR_INVALID_PARAMS: "Invalid parameters",
    ERR_RATE_LIMITED: "Too many requests, rate limit exceeded",
    ERR_INVALID_ACCESS_TOKEN: "Invalid access token",
    ERR_ACCESS_TOKEN_EXPIRED: "Access token expired",
    ERR_INVALID_SIGNATURE: "Invalid signature",
    ERR_INVALID_APP_KEY: "Invalid app_key",
    ERR_TIMESTAMP_EXPIRED: "Timestamp expired",
    ERR_INVALID_SHOP_CIPHER: "Invalid shop_cipher",
    ERR_WRONG_API_VERSION: "Shop is served by the other API version in this simulator",
}

SHOP_CIPHER_PREFIX = "cipher-"

WEBHOOK_TYPE_LEGACY_RETURN = 2
WEBHOOK_TYPE_202309_RETURN = 12


def renderable_statuses(api_version: ApiVersion) -> frozenset[ReturnStatus]:
    """Statuses a generation can express (202309 has no equivalent of CLOSED)."""
    table = LEGACY_CODE_OF_STATUS if api_version == "legacy" else V202309_NAME_OF_STATUS
    return frozenset(table)


def supported_types(api_version: ApiVersion) -> frozenset[ReverseType]:
    """Return types the simulator generates in a generation (cancellations are another API)."""
    table = LEGACY_TYPE_CODE_OF if api_version == "legacy" else V202309_TYPE_NAME_OF
    return frozenset(table) - {ReverseType.REQUEST_CANCEL}


def shop_cipher_for(shop_id: str) -> str:
    return f"{SHOP_CIPHER_PREFIX}{shop_id}"


def shop_id_for_cipher(cipher: str) -> str | None:
    if not cipher.startswith(SHOP_CIPHER_PREFIX) or len(cipher) == len(SHOP_CIPHER_PREFIX):
        return None
    return cipher[len(SHOP_CIPHER_PREFIX):]


def request_signature(
    app_secret: str, path: str, query: Mapping[str, str], body: bytes | None
) -> str:
    """HMAC-SHA256(app secret) over secret + path + sorted params (no sign/access_token)
    + body + secret, lowercase hex."""
    params = "".join(
        f"{k}{query[k]}" for k in sorted(query) if k not in ("sign", "access_token")
    )
    secret = app_secret.encode()
    message = secret + path.encode() + params.encode() + (body or b"") + secret
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def webhook_signature(app_key: str, app_secret: str, body: bytes) -> str:
    """Header `Authorization` of a webhook: HMAC-SHA256(app secret, app key + raw body)."""
    return hmac.new(app_secret.encode(), app_key.encode() + body, hashlib.sha256).hexdigest()


def response(code: int, data: Any = None, request_id: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": MESSAGES.get(code, "Error"),
                            "request_id": request_id}
    if data is not None:
        body["data"] = data
    return body
