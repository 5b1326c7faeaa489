"""Tokens at rest: Fernet (AES-128-CBC + HMAC-SHA256) under the keys of SHOP_TOKEN_KEYS.

The first key encrypts; every key decrypts (MultiFernet), so a key is rotated by putting a new
one first and keeping the old one after it until `ShopRepository.rotate_keys` (run at every
start) has re-encrypted every stored token under the new key (README: "Rotating the key").
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class TokenKeyError(Exception):
    """A stored token cannot be decrypted with any key of SHOP_TOKEN_KEYS."""


class TokenCipher:
    def __init__(self, keys: str) -> None:
        fernets = [Fernet(k.strip()) for k in keys.split(",") if k.strip()]
        if not fernets:
            raise ValueError("SHOP_TOKEN_KEYS holds no key")
        self._fernet = MultiFernet(fernets)

    def encrypt(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode()

    def decrypt(self, stored: str) -> str:
        return self._open(self._fernet.decrypt, stored)

    def rotate(self, stored: str) -> str:
        """The same token encrypted under the first key."""
        return self._open(self._fernet.rotate, stored)

    @staticmethod
    def _open(step: Callable[[bytes], bytes], stored: str) -> str:
        try:
            return step(stored.encode()).decode()
        except InvalidToken:
            raise TokenKeyError("a stored token cannot be decrypted with SHOP_TOKEN_KEYS "
                                "(was its key removed?)") from None
