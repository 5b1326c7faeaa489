"""TikTok Shop's answers, as the client reads them: the error it raises (`TikTokApiError`, which
says whether a retry may help), the codes it knows, `Retry-After`, and the filter that keeps
tokens and secrets out of the HTTP libraries' logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import httpx

# Error codes TikTok uses for throttling (HTTP 200 with this `code`): back off and retry.
RATE_LIMIT_CODES: frozenset[int] = frozenset({36009004})
# Non-zero codes worth retrying; every other non-zero code (bad signature, expired or invalid
# token, bad parameters, ...) is permanent for this request.
RETRYABLE_CODES: frozenset[int] = RATE_LIMIT_CODES

ACCESS_TOKEN_EXPIRED = 105002

# What some well-known codes mean, to name the reason in errors.
KNOWN_CODES: Mapping[int, str] = {
    36009004: "rate limited",
    36009001: "invalid request parameters",
    105001: "invalid access token",
    105002: "access token expired",
    106001: "invalid signature (wrong app secret?)",
    106002: "invalid app_key",
    106003: "timestamp outside the accepted window (clock skew?)",
    106011: "invalid shop_cipher",
}


class TikTokApiError(Exception):
    """A TikTok call failed. `retryable` says whether retrying later may succeed."""

    def __init__(
        self,
        code: int | None,
        message: str,
        retryable: bool,
        *,
        http_status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        path: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.retryable = retryable
        self.http_status = http_status
        self.request_id = request_id
        self.retry_after = retry_after
        self.path = path
        super().__init__(str(self))

    @property
    def reason(self) -> str:
        if self.code is not None and self.code in KNOWN_CODES:
            return KNOWN_CODES[self.code]
        if self.http_status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
            return "not authorised (credentials refused)"
        if self.http_status == HTTPStatus.TOO_MANY_REQUESTS:
            return "rate limited"
        if self.http_status is not None and self.http_status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            return "TikTok server error"
        return self.message

    def __str__(self) -> str:
        parts = [f"TikTok API error: {self.reason}"]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.http_status is not None:
            parts.append(f"http={self.http_status}")
        if self.path:
            parts.append(f"path={self.path}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        parts.append(f"message={self.message!r}")
        parts.append("retryable" if self.retryable else "not retryable")
        return " ".join(parts)


_SECRET_PARAM = re.compile(
    r"(?i)\b(access_token|refresh_token|app_secret|auth_code|code|state|sign|x-tts-access-token)"
    r"=[^&\s\"']+")


class _RedactSecrets(logging.Filter):
    """httpx logs each request URL at INFO; the legacy API carries the access token in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_PARAM.sub(r"\1=***", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_REDACT = _RedactSecrets()


def install_redaction() -> None:
    for name in ("httpx", "httpcore", "uvicorn.access"):
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)


def retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
    return max(seconds, 0.0)


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TikTokApiError) and exc.retryable


def parse_response(response: httpx.Response, path: str) -> dict[str, Any]:
    status = response.status_code
    request_id = response.headers.get("x-tt-logid")
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        raise TikTokApiError(
            None, "HTTP 429 Too Many Requests", True, http_status=status, path=path,
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        )
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        raise TikTokApiError(None, f"HTTP {status}", True, http_status=status, path=path,
                             retry_after=retry_after_seconds(response.headers.get("retry-after")))
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if status >= HTTPStatus.BAD_REQUEST:
        code, message = _code_message(payload)
        raise TikTokApiError(code, message or f"HTTP {status}", False, http_status=status,
                             path=path, request_id=request_id)
    if not isinstance(payload, dict):
        # A 2xx that is not a JSON object: a proxy hiccup or a truncated body. Worth a retry.
        raise TikTokApiError(None, "response is not a JSON object", True, http_status=status,
                             path=path)
    code, message = _code_message(payload)
    request_id = str(payload.get("request_id") or request_id or "") or None
    if code != 0:
        raise TikTokApiError(
            code, message or "no message", code in RETRYABLE_CODES, http_status=status,
            path=path, request_id=request_id,
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        )
    data = payload.get("data") or {}
    if not isinstance(data, dict):
        raise TikTokApiError(0, "data is not an object", False, path=path, request_id=request_id)
    return data


def _code_message(payload: Any) -> tuple[int | None, str]:
    if not isinstance(payload, dict):
        return None, ""
    raw_code = payload.get("code")
    try:
        code = int(raw_code) if raw_code is not None else None
    except (TypeError, ValueError):
        code = None
    return code, str(payload.get("message") or "")
