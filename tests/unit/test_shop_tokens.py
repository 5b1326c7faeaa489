"""Shops' token handling without servers: the signed OAuth state, tokens encrypted at rest and
their key rotation, TikTok's two forms of expiry, when a token is due for renewal, and the
simulator's authorization side (page, token get, refresh, revocation, expiry)."""

from __future__ import annotations

import random
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet

from ingestor.shops.crypto import TokenCipher, TokenKeyError
from ingestor.shops.repository import refresh_due
from ingestor.shops.tokens import TikTokAuthClient, TokenGrant, expiry
from ingestor.tiktok_client import TikTokApiError
from runtime.oauth_state import InvalidState, sign_state, verify_state
from tiktok_sim.app import create_app
from tiktok_sim.auth import SimAuth
from tiktok_sim.protocol import ERR_ACCESS_TOKEN_EXPIRED, ERR_INVALID_ACCESS_TOKEN
from tiktok_sim.settings import SimSettings

SHOP = "7494560109732840000"


def test_a_state_verifies_with_its_secret_only_and_only_while_fresh() -> None:
    state = sign_state("secret", now=1_000_000)
    verify_state("secret", state, now=1_000_100)
    with pytest.raises(InvalidState, match="signature"):
        verify_state("other", state, now=1_000_100)
    with pytest.raises(InvalidState, match="expired"):
        verify_state("secret", state, max_age_s=600, now=1_000_601)
    issued, nonce, mac = state.split(".")
    with pytest.raises(InvalidState, match="signature"):
        verify_state("secret", f"{int(issued) + 1}.{nonce}.{mac}", now=1_000_100)
    with pytest.raises(InvalidState, match="malformed"):
        verify_state("secret", "nonsense", now=1_000_100)
    with pytest.raises(InvalidState, match="no state secret"):
        verify_state("", state, now=1_000_100)


def test_tokens_are_encrypted_and_survive_a_key_rotation() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    stored = TokenCipher(old).encrypt("sim-at-secret")
    assert "sim-at-secret" not in stored
    rotating = TokenCipher(f"{new},{old}")
    assert rotating.decrypt(stored) == "sim-at-secret"
    rotated = rotating.rotate(stored)
    assert TokenCipher(new).decrypt(rotated) == "sim-at-secret"  # the old key can go
    with pytest.raises(TokenKeyError, match="SHOP_TOKEN_KEYS"):
        TokenCipher(new).decrypt(stored)


def test_expiries_are_read_as_durations_or_unix_times() -> None:
    now = 1_800_000_000.5
    assert expiry(604_800, now) == 1_800_604_800
    assert expiry(1_800_604_800, now) == 1_800_604_800
    assert expiry("3600", now) == 1_800_003_600


def test_a_token_is_due_for_renewal_at_about_half_its_life() -> None:
    grant = TokenGrant(access_token="a", refresh_token="r", access_expires_at=1_000_100,
                       refresh_expires_at=2_000_000, issued_at=1_000_000)
    dues = {refresh_due(grant, random.Random(seed)) for seed in range(50)}
    assert min(dues) >= 1_000_040
    assert max(dues) <= 1_000_060
    assert len(dues) > 5  # jittered


def test_no_token_or_secret_shows_in_a_token_grant() -> None:
    grant = TokenGrant(access_token="sim-at-x", refresh_token="sim-rt-y", access_expires_at=1,
                       refresh_expires_at=2, issued_at=0)
    assert "sim-at-x" not in repr(grant)
    assert "sim-rt-y" not in repr(grant)


async def test_the_simulated_authorization_issues_refreshes_expires_and_revokes() -> None:
    clock = [time.time()]
    settings = SimSettings(shops=f"{SHOP}:202309:3", auth_redirect_url="http://app/cb")
    app = create_app(settings, clock=lambda: clock[0])
    auth: SimAuth = app.state.sim_auth
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        page = await http.get("/oauth/authorize", params={"state": "s1"})
        assert page.status_code == 302
        query = parse_qs(urlsplit(page.headers["location"]).query)
        assert query["state"] == ["s1"]
        code = query["code"][0]
    client = TikTokAuthClient("http://sim", "http://sim", settings.app_key, settings.app_secret,
                              transport=transport)
    try:
        grant = await client.exchange_code(code)
        assert auth.access_error(grant.access_token) is None
        shops = await client.authorized_shops(grant.access_token)
        assert [s.shop_id for s in shops] == [SHOP]
        assert shops[0].cipher == f"cipher-{SHOP}"
        with pytest.raises(TikTokApiError):  # a code works once
            await client.exchange_code(code)

        renewed = await client.refresh(grant.refresh_token)
        assert renewed.access_token != grant.access_token
        with pytest.raises(TikTokApiError) as refused:  # the old refresh token is spent
            await client.refresh(grant.refresh_token)
        assert not refused.value.retryable

        clock[0] += settings.access_token_life_s + 1
        assert auth.access_error(renewed.access_token) == ERR_ACCESS_TOKEN_EXPIRED
        auth.revoke(SHOP, access_tokens=True)
        assert auth.access_error(renewed.access_token) == ERR_INVALID_ACCESS_TOKEN
        with pytest.raises(TikTokApiError):
            await client.refresh(renewed.refresh_token)
    finally:
        await client.aclose()
