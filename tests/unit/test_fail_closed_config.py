"""Fail-closed configuration: without their secrets the ingestor and the query API refuse to
start, with one line on stderr naming what is missing (never a traceback, never a secret).

A few tests start the services as real processes (`python -m ...`): they exit before opening
any connection, so no server is needed. The variations run `settings_or_exit` in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from ingestor.settings import Settings as IngestorSettings
from ingestor.settings import ShopConfig
from ingestor.settings import settings_or_exit as ingestor_settings
from ingestor.shops.renewal import unavailable_reason
from ingestor.shops.repository import ShopRecord
from query_api.settings import settings_or_exit as query_api_settings

CONFIGURATION = ("TIKTOK_", "QUERY_API_", "INGESTOR_", "KAFKA_", "MONGODB_", "SHOP_", "OAUTH_")
SECRET = "do-not-print-this-secret"
TOKEN_KEY = "ZG8tbm90LXByaW50LXRoaXMtdG9rZW4ta2V5LSEhISE="  # a Fernet key (32 bytes)
SHOP_SECRETS = {"SHOP_TOKEN_KEYS": TOKEN_KEY, "OAUTH_STATE_SECRET": SECRET}


def start(module: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m module` with only `env` of the configuration (cwd has no .env file)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(CONFIGURATION)}
    return subprocess.run([sys.executable, "-m", module], env={**base, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one line the service printed before exiting non-zero."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]


def test_the_ingestor_refuses_to_start_without_the_app_key_and_secret(tmp_path: Path) -> None:
    assert refused(start("ingestor", tmp_path)) == (
        "ingestor: TIKTOK_APP_KEY is not set; TIKTOK_APP_SECRET is not set; SHOP_TOKEN_KEYS is "
        "not set; OAUTH_STATE_SECRET is not set; refusing to start")


def test_the_query_api_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    assert refused(start("query_api", tmp_path)) == (
        "query_api: QUERY_API_TOKENS is not set; OAUTH_STATE_SECRET is not set; "
        "refusing to start")


def test_an_invalid_setting_is_named_without_printing_any_secret(tmp_path: Path) -> None:
    result = start("ingestor", tmp_path, TIKTOK_APP_KEY="key", TIKTOK_APP_SECRET=SECRET,
                   TIKTOK_ACCESS_TOKEN=SECRET, INGESTOR_PORT="not-a-port", **SHOP_SECRETS,
                   TIKTOK_SHOPS=f'[{{"shop_id": "s", "access_token": "{SECRET}"}}]')
    line = refused(result)
    assert line.startswith("ingestor: ")
    assert line.endswith("; refusing to start")
    assert "INGESTOR_PORT is invalid" in line
    assert "TIKTOK_SHOPS is invalid" in line
    assert SECRET not in result.stderr
    assert TOKEN_KEY not in result.stderr


def refusal_in_process(
    load: Callable[[], object], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path, **env: str,
) -> str:
    """The line `settings_or_exit` prints with only `env` configured, having checked it exits."""
    monkeypatch.chdir(tmp_path)  # no .env file
    for name in os.environ:
        if name.startswith(CONFIGURATION):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        load()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert SECRET not in err
    assert TOKEN_KEY not in err
    assert err.count("\n") == 1
    return err.strip()


@pytest.mark.parametrize(("env", "line"), [
    ({"TIKTOK_APP_KEY": "key", **SHOP_SECRETS},
     "ingestor: TIKTOK_APP_SECRET is not set; refusing to start"),
    ({"TIKTOK_APP_KEY": "key", "TIKTOK_APP_SECRET": "", **SHOP_SECRETS},
     "ingestor: TIKTOK_APP_SECRET is not set; refusing to start"),
    ({"TIKTOK_APP_SECRET": SECRET, **SHOP_SECRETS},
     "ingestor: TIKTOK_APP_KEY is not set; refusing to start"),
    ({"TIKTOK_APP_KEY": "key", "TIKTOK_APP_SECRET": SECRET, "OAUTH_STATE_SECRET": SECRET},
     "ingestor: SHOP_TOKEN_KEYS is not set; refusing to start"),
    ({"TIKTOK_APP_KEY": "key", "TIKTOK_APP_SECRET": SECRET, "SHOP_TOKEN_KEYS": TOKEN_KEY},
     "ingestor: OAUTH_STATE_SECRET is not set; refusing to start"),
    ({"TIKTOK_APP_KEY": "key", "TIKTOK_APP_SECRET": SECRET, "OAUTH_STATE_SECRET": SECRET,
      "SHOP_TOKEN_KEYS": SECRET},
     "ingestor: SHOP_TOKEN_KEYS is invalid (Value error, each key must be 32 url-safe "
     "base64-encoded bytes (Fernet.generate_key())); refusing to start"),
    ({"TIKTOK_APP_KEY": "key", "TIKTOK_APP_SECRET": SECRET, **SHOP_SECRETS,
      "TIKTOK_SHOPS": f'[{{"access_token": "{SECRET}"'},
     'ingestor: error parsing value for field "tiktok_shops" from source "EnvSettingsSource"; '
     "refusing to start"),
])
def test_the_ingestor_names_what_is_missing_or_unreadable(
    env: dict[str, str], line: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    assert refusal_in_process(ingestor_settings, monkeypatch, capsys, tmp_path, **env) == line


@pytest.mark.parametrize(("env", "problem"), [
    ({"OAUTH_STATE_SECRET": SECRET}, "QUERY_API_TOKENS is not set"),
    ({"QUERY_API_TOKENS": "", "OAUTH_STATE_SECRET": SECRET}, "QUERY_API_TOKENS is not set"),
    ({"QUERY_API_TOKENS": "{}", "OAUTH_STATE_SECRET": SECRET}, "QUERY_API_TOKENS is empty"),
    ({"QUERY_API_TOKENS": '{"t": ["*"]}'}, "OAUTH_STATE_SECRET is not set"),
    ({"QUERY_API_TOKENS": "{}", "QUERY_API_PORT": "0", "OAUTH_STATE_SECRET": SECRET},
     "QUERY_API_TOKENS is empty; QUERY_API_PORT is invalid (Input should be greater than or "
     "equal to 1)"),
])
def test_the_query_api_names_what_is_missing(
    env: dict[str, str], problem: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    line = refusal_in_process(query_api_settings, monkeypatch, capsys, tmp_path, **env)
    assert line == f"query_api: {problem}; refusing to start"


def test_the_ingestor_has_no_default_access_token() -> None:
    settings = IngestorSettings(tiktok_app_key="key", tiktok_app_secret="secret",
                                shop_token_keys=TOKEN_KEY, oauth_state_secret=SECRET)
    assert settings.tiktok_access_token is None


def test_a_shop_without_any_access_token_cannot_be_synced_and_says_why() -> None:
    settings = IngestorSettings(
        tiktok_app_key="key", tiktok_app_secret="secret", tiktok_api_base_url="http://tiktok",
        shop_token_keys=TOKEN_KEY, oauth_state_secret=SECRET,
        tiktok_shops=[ShopConfig(shop_id="s1", api_version="legacy"),
                      ShopConfig(shop_id="s2", api_version="legacy", access_token=SECRET)],
    )
    s1, s2 = settings.tiktok_shops
    assert settings.access_token_for(s1) is None
    assert settings.access_token_for(s2) == SECRET  # its own token is enough
    with_default = settings.model_copy(update={"tiktok_access_token": SecretStr("fallback")})
    assert with_default.access_token_for(s1) == "fallback"
    # Seeded without a token, the shop cannot be synced, and its sync says why.
    seeded = ShopRecord(shop_id="s1", api_version="legacy", cipher=None, status="connected",
                        source="env", status_reason=None, token_version=1,
                        access_expires_at=None, refresh_due_at=None, access_token=None,
                        refresh_token=None)
    assert unavailable_reason("s1", seeded) == (
        "shop s1 has no access token (no access_token in TIKTOK_SHOPS and TIKTOK_ACCESS_TOKEN "
        "is not set)")
