"""TikTok webhook signatures (pure).

`Authorization` = lowercase hex of HMAC-SHA256(key = app secret, message = app key + raw body).
"""

from __future__ import annotations

import hashlib
import hmac


def webhook_signature(app_key: str, app_secret: str, raw_body: bytes) -> str:
    """The signature TikTok sends in the `Authorization` header of a webhook."""
    message = app_key.encode("utf-8") + raw_body
    return hmac.new(app_secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify_webhook(
    app_key: str, app_secret: str, raw_body: bytes, provided: str | None
) -> bool:
    """Whether `provided` is the body's signature; a missing or empty one is never valid.

    The comparison is constant time; surrounding whitespace and hex letter case are ignored.
    """
    if not provided:
        return False
    candidate = provided.strip().lower().encode("utf-8", errors="replace")
    expected = webhook_signature(app_key, app_secret, raw_body).encode("ascii")
    return hmac.compare_digest(candidate, expected)
