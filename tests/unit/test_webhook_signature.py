"""Webhook signatures: HMAC-SHA256(key = app secret, message = app key + raw body), hex."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from ingestor.signature import verify_webhook, webhook_signature

KEY = "app-key"
SECRET = "app-secret"
BODY = b'{"type": 2, "shop_id": "1"}'


def test_signature_is_lowercase_hex_hmac_sha256_of_app_key_and_body_keyed_by_secret() -> None:
    expected = hmac.new(SECRET.encode(), KEY.encode() + BODY, hashlib.sha256).hexdigest()
    assert webhook_signature(KEY, SECRET, BODY) == expected
    assert expected == expected.lower()
    assert len(expected) == 64


def test_correct_signature_is_accepted() -> None:
    assert verify_webhook(KEY, SECRET, BODY, webhook_signature(KEY, SECRET, BODY))


def test_signature_in_upper_case_or_with_whitespace_is_accepted() -> None:
    sig = webhook_signature(KEY, SECRET, BODY)
    assert verify_webhook(KEY, SECRET, BODY, f" {sig.upper()}\n")


@pytest.mark.parametrize("provided", [None, "", "   "])
def test_missing_signature_is_rejected(provided: str | None) -> None:
    assert not verify_webhook(KEY, SECRET, BODY, provided)


def test_signature_of_another_body_is_rejected() -> None:
    assert not verify_webhook(KEY, SECRET, BODY + b" ", webhook_signature(KEY, SECRET, BODY))


def test_signature_made_with_another_secret_is_rejected() -> None:
    assert not verify_webhook(KEY, SECRET, BODY, webhook_signature(KEY, "other", BODY))


def test_signature_made_with_another_app_key_is_rejected() -> None:
    assert not verify_webhook(KEY, SECRET, BODY, webhook_signature("other", SECRET, BODY))


def test_garbage_and_non_ascii_signatures_are_rejected_without_error() -> None:
    assert not verify_webhook(KEY, SECRET, BODY, "not-hex")
    assert not verify_webhook(KEY, SECRET, BODY, "é" * 64)
