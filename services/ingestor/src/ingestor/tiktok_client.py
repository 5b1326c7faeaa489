"""Async client of the TikTok Shop returns APIs (legacy "reverse" and 202309 "return_refund").

One client serves one shop. It signs every request (`tiktok_signing`), paces requests with a
token bucket (aiolimiter), retries throttling and transient failures with exponential backoff
and jitter (tenacity; `Retry-After` is honoured), and raises `TikTokApiError` for anything it
will not retry. Secrets and tokens are never logged nor put in error messages.

Tokens: a client given `credentials` (an `AccessTokens`, e.g. a connected shop's) asks it for
the access token of each call; a call refused because the token expired (code 105002) has it
renewed once (`AccessTokens.renewed`) and is tried again with the new token.

Time windows: `since` is inclusive, `until` exclusive. 202309 maps them to `update_time_ge` /
`update_time_lt`. The legacy API's `update_time_to` is sent as `until` (treated as inclusive by
TikTok as far as public clients show): a change exactly at `until` may be seen twice, which
downstream deduplication absorbs, but none is missed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol, Self

import httpx
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from ingestor.legacy_walk import walk_legacy
from ingestor.tiktok_http import (
    ACCESS_TOKEN_EXPIRED,
    KNOWN_CODES,
    RATE_LIMIT_CODES,
    RETRYABLE_CODES,
    TikTokApiError,
    install_redaction,
    is_retryable,
    parse_response,
)
from ingestor.tiktok_mapping import MappingResult, map_records, record_update_time
from ingestor.tiktok_signing import sign_request

log = logging.getLogger(__name__)

__all__ = [  # what callers import from here, the errors included
    "ACCESS_TOKEN_EXPIRED", "KNOWN_CODES", "RATE_LIMIT_CODES", "RETRYABLE_CODES",
    "AccessTokens", "ApiVersion", "Page", "TikTokApiError", "TikTokClientConfig",
    "TikTokShopClient",
]

ApiVersion = Literal["legacy", "202309"]

LEGACY_SEARCH_PATH = "/api/reverse/reverse_order/list"
V202309_SEARCH_PATH = "/return_refund/202309/returns/search"
LEGACY_PAGE_SIZE_MAX = 100
V202309_PAGE_SIZE_MAX = 50

@dataclass(frozen=True)
class TikTokClientConfig:
    base_url: str
    app_key: str
    app_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    shop_id: str
    api_version: ApiVersion = "202309"
    shop_cipher: str | None = None  # required for 202309
    requests_per_second: float = 10.0
    max_attempts: int = 6
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    backoff_initial_s: float = 0.5  # first retry waits up to this (full jitter), then doubles
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0  # cap on a server-requested Retry-After
    legacy_page_size: int = LEGACY_PAGE_SIZE_MAX
    v202309_page_size: int = V202309_PAGE_SIZE_MAX

    def __post_init__(self) -> None:
        if self.api_version not in ("legacy", "202309"):
            raise ValueError(f"api_version must be 'legacy' or '202309', not {self.api_version!r}")
        if self.api_version == "202309" and not self.shop_cipher:
            raise ValueError("shop_cipher is required for the 202309 API")
        if self.requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 1 <= self.legacy_page_size <= LEGACY_PAGE_SIZE_MAX:
            raise ValueError(f"legacy_page_size must be 1..{LEGACY_PAGE_SIZE_MAX}")
        if not 1 <= self.v202309_page_size <= V202309_PAGE_SIZE_MAX:
            raise ValueError(f"v202309_page_size must be 1..{V202309_PAGE_SIZE_MAX}")


@dataclass(frozen=True)
class Page:
    """One page of a search: the records as received and what each maps to."""

    number: int  # 1-based
    raw: tuple[dict[str, Any], ...]
    results: tuple[MappingResult, ...]
    max_update_time: int | None  # the newest update_time among the raw records


class AccessTokens(Protocol):
    """Where a client gets its access token from, and has an expired one renewed."""

    async def current(self) -> str: ...

    async def renewed(self, expired: str) -> str: ...  # after TikTok said `expired` expired



class TikTokShopClient:
    def __init__(
        self,
        config: TikTokClientConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        credentials: AccessTokens | None = None,
    ) -> None:
        self.config = config
        self._credentials = credentials
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        rate = config.requests_per_second
        # aiolimiter needs capacity >= 1: below one request a second, widen the period instead.
        self._limiter = AsyncLimiter(rate, 1.0) if rate >= 1 else AsyncLimiter(1, 1.0 / rate)
        timeout = httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s)
        install_redaction()
        self._http = httpx.AsyncClient(
            base_url=config.base_url, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------------------ public API

    async def iter_returns(
        self, since: int | None = None, until: int | None = None
    ) -> AsyncIterator[Page]:
        """Every return updated in [since, until), oldest update first, one page at a time."""
        if self.config.api_version == "legacy":
            pages = self._iter_legacy(since, until, {})
        else:
            pages = self._iter_202309(since, until, {})
        async for page in pages:
            yield page

    async def get_return(self, return_id: str) -> MappingResult | None:
        """The current state of one return (for webhook enrichment); None if TikTok has none."""
        if self.config.api_version == "legacy":
            data = await self._post_legacy({"reverse_order_id": return_id, "offset": 0, "size": 1})
            records = data.get("reverse_list") or []
            id_key = "reverse_order_id"
        else:
            data = await self._post_202309({"return_ids": [return_id]}, page_token=None)
            records = data.get("return_orders") or []
            id_key = "return_id"
        matching = [r for r in records if isinstance(r, dict) and str(r.get(id_key)) == return_id]
        if not matching:
            return None
        return map_records(matching[:1], self.config.shop_id, self.config.api_version)[0]

    async def call(
        self,
        method: Literal["GET", "POST"],
        path: str,
        body: dict[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Any other call of the shop's API generation (decisions, reject reasons): signed,
        paced and retried like a search; `data` of the answer, or `TikTokApiError`."""
        legacy = self.config.api_version == "legacy"

        async def attempt(token: str) -> dict[str, Any]:
            if legacy:
                extra = {"shop_id": self.config.shop_id, "access_token": token}
                headers: dict[str, str] = {}
            else:
                extra = {"shop_cipher": self.config.shop_cipher or ""}
                headers = {"x-tts-access-token": token}
            return await self._call(path, body, extra_query={**extra, **(query or {})},
                                    headers=headers, sign_body=not legacy, method=method)

        return await self._with_token(attempt)

    # ------------------------------------------------------------------------------ paging

    def _page(self, number: int, records: list[Any]) -> Page:
        raw = tuple(r if isinstance(r, dict) else {"record": r} for r in records)
        results = map_records(records, self.config.shop_id, self.config.api_version)
        times = [t for t in (record_update_time(r) for r in raw) if t is not None]
        return Page(number, raw, results, max(times) if times else None)

    async def _iter_legacy(
        self, since: int | None, until: int | None, filters: dict[str, Any]
    ) -> AsyncIterator[Page]:
        """Walks time, not offsets (`legacy_walk`)."""

        async def fetch(body: dict[str, Any]) -> tuple[list[Any], bool]:
            data = await self._post_legacy(body)
            return _records(data, "reverse_list"), bool(data.get("more"))

        number = 0
        async for records in walk_legacy(fetch, since, until, filters,
                                         size=self.config.legacy_page_size,
                                         shop_id=self.config.shop_id):
            number += 1
            yield self._page(number, records)

    async def _iter_202309(
        self, since: int | None, until: int | None, filters: dict[str, Any]
    ) -> AsyncIterator[Page]:
        body: dict[str, Any] = dict(filters)
        if since is not None:
            body["update_time_ge"] = since
        if until is not None:
            body["update_time_lt"] = until
        token: str | None = None
        seen_tokens: set[str] = set()
        number = 0
        while True:
            data = await self._post_202309(body, page_token=token)
            number += 1
            yield self._page(number, _records(data, "return_orders"))
            next_token = data.get("next_page_token") or None
            if next_token is None:
                return
            next_token = str(next_token)
            if next_token in seen_tokens:
                raise TikTokApiError(None, "next_page_token repeats: paging would never end",
                                     False, path=V202309_SEARCH_PATH)
            seen_tokens.add(next_token)
            token = next_token

    # ------------------------------------------------------------------------------ requests

    async def _post_legacy(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._with_token(lambda token: self._call(
            LEGACY_SEARCH_PATH,
            body,
            extra_query={"shop_id": self.config.shop_id, "access_token": token},
            headers={},
            sign_body=False,
        ))

    async def _post_202309(self, body: dict[str, Any], page_token: str | None) -> dict[str, Any]:
        query = {
            "shop_cipher": self.config.shop_cipher or "",
            "page_size": str(self.config.v202309_page_size),
            "sort_field": "update_time",
            "sort_order": "ASC",
        }
        if page_token:
            query["page_token"] = page_token
        return await self._with_token(lambda token: self._call(
            V202309_SEARCH_PATH,
            body,
            extra_query=query,
            headers={"x-tts-access-token": token},
            sign_body=True,
        ))

    async def _with_token(
        self, call: Callable[[str], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """`call` with the current access token; once more with a renewed one if TikTok says
        it expired (only with `credentials`: a fixed token cannot be renewed)."""
        if self._credentials is None:
            return await call(self.config.access_token)
        token = await self._credentials.current()
        try:
            return await call(token)
        except TikTokApiError as exc:
            if exc.code != ACCESS_TOKEN_EXPIRED:
                raise
        log.info("tiktok access token expired; renewing it once",
                 extra={"shop_id": self.config.shop_id})
        return await call(await self._credentials.renewed(token))

    async def _call(
        self,
        path: str,
        body: dict[str, Any] | None,
        *,
        extra_query: dict[str, str],
        headers: dict[str, str],
        sign_body: bool,
        method: str = "POST",
    ) -> dict[str, Any]:
        content = (b"" if body is None
                   else json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(path, content, extra_query, headers,
                                           sign_body=sign_body, method=method)
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _attempt(
        self,
        path: str,
        content: bytes,
        extra_query: dict[str, str],
        headers: dict[str, str],
        *,
        sign_body: bool,
        method: str = "POST",
    ) -> dict[str, Any]:
        query = {"app_key": self.config.app_key, "timestamp": str(int(self._clock())),
                 **extra_query}
        query["sign"] = sign_request(
            self.config.app_secret, path, query, content if sign_body else None
        )
        async with self._limiter:
            try:
                response = await self._http.request(
                    method,
                    path,
                    params=query,
                    content=content or None,
                    headers={"content-type": "application/json", **headers},
                )
            except httpx.TransportError as exc:  # timeouts, refused or reset connections
                raise TikTokApiError(None, f"{type(exc).__name__}: transport failure", True,
                                     path=path) from None
        return parse_response(response, path)

    # ------------------------------------------------------------------------------ retry policy

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, TikTokApiError) and exc.retry_after is not None:
            return min(exc.retry_after, self.config.retry_after_max_s)
        ceiling = min(self.config.backoff_max_s,
                      self.config.backoff_initial_s * 2 ** (state.attempt_number - 1))
        return self._rng.uniform(0, ceiling)  # "full jitter"

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else None
        log.warning(
            "tiktok call failed, retrying: %s",
            exc,
            extra={"shop_id": self.config.shop_id, "attempt": state.attempt_number,
                   "wait_s": wait},
        )


def _records(data: Mapping[str, Any], key: str) -> list[Any]:
    records = data.get(key) or []
    if not isinstance(records, list):
        raise TikTokApiError(None, f"data.{key} is not a list", False)
    return records

