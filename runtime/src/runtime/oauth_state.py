"""The `state` of TikTok's authorization redirect: signed by the query API (which sends the
seller to TikTok), checked by the ingestor (which serves the callback). Both hold the same
secret (OAUTH_STATE_SECRET); neither trusts a state it cannot verify.

A state is `<issued unix s>.<nonce>.<hex HMAC-SHA256(secret, issued.nonce)>`: it expires
(`max_age_s`) and cannot be forged or altered without the secret. (Replay within its life only
re-runs a code exchange TikTok itself allows once.)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

DEFAULT_MAX_AGE_S = 600
STATE_PARTS = 3  # <issued at>.<nonce>.<signature>
CLOCK_SKEW_S = 60  # a state issued this far in the future is still accepted


class InvalidState(ValueError):
    """The state is malformed, forged or expired (the message says which, never the secret)."""


def _mac(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def sign_state(secret: str, now: float | None = None) -> str:
    if not secret:
        raise ValueError("no state secret")
    issued = int(time.time() if now is None else now)
    payload = f"{issued}.{secrets.token_urlsafe(16)}"
    return f"{payload}.{_mac(secret, payload)}"


def verify_state(secret: str, state: str, *, max_age_s: float = DEFAULT_MAX_AGE_S,
                 now: float | None = None) -> None:
    """Raise InvalidState unless `state` was signed with `secret` less than `max_age_s` ago."""
    if not secret:
        raise InvalidState("no state secret configured")
    parts = state.split(".")
    if len(parts) != STATE_PARTS or not parts[0].isdigit():
        raise InvalidState("malformed state")
    payload = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_mac(secret, payload), parts[2]):
        raise InvalidState("state signature does not match")
    age = (time.time() if now is None else now) - int(parts[0])
    if age > max_age_s or age < -CLOCK_SKEW_S:
        raise InvalidState("state expired; start the connection again")
