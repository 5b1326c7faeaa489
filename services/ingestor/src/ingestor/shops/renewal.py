"""Renewing a shop's access token with its refresh token: once at a time per shop, across
replicas (a lease on the shop's document) and within a process (a lock per shop).

Used by the background refresher (a token due for renewal) and by API calls that met an expired
token (`ShopCredentials.renewed`: renew only if the stored token is still the expired one,
else use what another renewal stored meanwhile). A refresh TikTok refuses marks the shop
"needs re-authorization" with the reason; transient failures leave it as it was.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import structlog

from contracts.shops import ShopStatus
from ingestor.shops.repository import ShopRecord, ShopRepository
from ingestor.shops.tokens import TikTokAuthClient
from ingestor.tiktok_client import TikTokApiError
from runtime.turns import KeyedTurns

log = structlog.get_logger("ingestor.shops")

LEASE_POLL_S = 0.25


class ShopUnavailable(Exception):
    """The shop cannot be called now (not connected, needs re-authorization, no token); the
    message says why and what to do, and never holds a token."""


def unavailable_reason(shop_id: str, record: ShopRecord | None) -> str | None:
    """Why this shop cannot be synced, or None."""
    if record is None:
        return (f"shop {shop_id} is not configured (not connected on the Shops page, "
                "not in TIKTOK_SHOPS)")
    if record.status == ShopStatus.NEEDS_REAUTHORIZATION.value:
        return f"shop {shop_id} needs re-authorization: {record.status_reason or 'token refused'}"
    if record.status != ShopStatus.CONNECTED.value:
        return f"shop {shop_id} is {record.status}; connect it again on the Shops page"
    if record.access_token is None:
        return (f"shop {shop_id} has no access token (no access_token in TIKTOK_SHOPS and "
                "TIKTOK_ACCESS_TOKEN is not set)")
    return None


@dataclass
class TokenRenewer:
    repo: ShopRepository
    auth: TikTokAuthClient
    lease_ttl_s: float = 30.0
    _turns: KeyedTurns = field(default_factory=KeyedTurns)

    async def renew(self, shop_id: str, *, expired: str | None = None,
                    now: float | None = None) -> str:
        """The shop's access token after renewing it: when `expired` is given, only if the
        stored token is still that one; else only if the token is due for renewal."""
        async with self._turns(shop_id):
            deadline = time.monotonic() + 2 * self.lease_ttl_s
            while True:
                record = await self.repo.get(shop_id)
                reason = unavailable_reason(shop_id, record)
                if reason is not None or record is None or record.access_token is None:
                    raise ShopUnavailable(reason)
                if expired is not None and record.access_token != expired:
                    return record.access_token  # renewed meanwhile
                moment = time.time() if now is None else now
                if expired is None and (record.refresh_due_at or 0) > moment:
                    return record.access_token  # not due (any more)
                if record.refresh_token is None:
                    raise ShopUnavailable(
                        f"shop {shop_id}'s access token expired and it has no refresh token "
                        "(seeded from TIKTOK_SHOPS): connect it on the Shops page")
                lease = await self.repo.take_refresh_lease(shop_id, self.lease_ttl_s)
                if lease is None:  # another replica renews it: wait and read again
                    if time.monotonic() > deadline:
                        raise TikTokApiError(None, "another process holds the shop's refresh "
                                             "lease", True)
                    await asyncio.sleep(LEASE_POLL_S)
                    continue
                try:
                    token = await self._refresh(record)
                finally:
                    await self.repo.release_refresh_lease(shop_id, lease)
                if token is not None:
                    return token

    async def _refresh(self, record: ShopRecord) -> str | None:
        """The new access token, or None when another renewal stored one first."""
        assert record.refresh_token is not None
        try:
            grant = await self.auth.refresh(record.refresh_token)
        except TikTokApiError as exc:
            if exc.retryable:
                log.warning("token_refresh_failed", shop_id=record.shop_id, error=exc.reason)
                raise
            reason = (f"TikTok refused to renew its access token ({exc.reason}"
                      f"{f', code {exc.code}' if exc.code is not None else ''}); "
                      "authorize the app again with Connect on the Shops page")
            if await self.repo.needs_reauthorization(record.shop_id, reason,
                                                     record.token_version):
                log.warning("shop_needs_reauthorization", shop_id=record.shop_id,
                            reason=exc.reason, code=exc.code)
                raise ShopUnavailable(f"shop {record.shop_id} needs re-authorization: "
                                      f"{reason}") from None
            return None  # renewed by someone else meanwhile: read it again
        if not await self.repo.save_renewed(record.shop_id, grant, record.token_version):
            return None
        log.info("token_refreshed", shop_id=record.shop_id,
                 access_expires_at=grant.access_expires_at)
        return grant.access_token


@dataclass
class ShopCredentials:
    """A connected shop's access token for the TikTok client (`tiktok_client.AccessTokens`)."""

    shop_id: str
    repo: ShopRepository
    renewer: TokenRenewer

    async def current(self) -> str:
        record = await self.repo.get(self.shop_id)
        reason = unavailable_reason(self.shop_id, record)
        if reason is not None or record is None or record.access_token is None:
            raise ShopUnavailable(reason)
        return record.access_token

    async def renewed(self, expired: str) -> str:
        return await self.renewer.renew(self.shop_id, expired=expired)
