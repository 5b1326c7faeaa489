"""Request signing of the TikTok Shop open API (both generations); pure functions.

sign = lowercase hex HMAC-SHA256(key = app secret, message =
    app_secret + path + concat(sorted query params as key+value, without sign and access_token)
    + body + app_secret)

The 202309 API includes the raw JSON body; the legacy API signs no body (pass ``None``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

UNSIGNED_PARAMS: frozenset[str] = frozenset({"sign", "access_token"})


def string_to_sign(
    app_secret: str, path: str, query: Mapping[str, str], body: bytes | None
) -> bytes:
    """The exact bytes that are signed (exposed so a mismatch can be debugged)."""
    params = "".join(f"{k}{query[k]}" for k in sorted(query) if k not in UNSIGNED_PARAMS)
    secret = app_secret.encode()
    return secret + path.encode() + params.encode() + (body or b"") + secret


def sign_request(
    app_secret: str, path: str, query: Mapping[str, str], body: bytes | None
) -> str:
    """The value of the ``sign`` query parameter for this request."""
    message = string_to_sign(app_secret, path, query, body)
    return hmac.new(app_secret.encode(), message, hashlib.sha256).hexdigest()
