"""The `shops` collection: one document per TikTok shop the app may act for (`_id` = shop id).

Written by the ingestor (which alone holds the token key), read by the query API through
`SHOP_PUBLIC_FIELDS` only: a projection that names what may be shown, so a token field can
never reach an API response, whatever is added to the document later.

    _id, name, region, cipher, api_version ("202309" | "legacy"), source ("oauth" | "env"),
    status (ShopStatus), status_reason (why it needs re-authorization, readable),
    access_token_enc, refresh_token_enc (Fernet tokens; never in the public projection),
    access_expires_at, refresh_expires_at (unix s), refresh_due_at (unix s: when the refresher
    renews the access token), token_version (+1 per stored token pair), granted_scopes,
    seller_name, open_id, connected_at, updated_at, last_refresh_at, refresh_lease.
"""

from __future__ import annotations

from enum import StrEnum

SHOPS_COLLECTION = "shops"


class ShopStatus(StrEnum):
    CONNECTED = "connected"
    NEEDS_REAUTHORIZATION = "needs_reauthorization"
    DISCONNECTED = "disconnected"


class ShopSource(StrEnum):
    OAUTH = "oauth"  # authorized by the seller; tokens refresh themselves
    ENV = "env"  # seeded from TIKTOK_SHOPS for development; its token never refreshes


# What the query API may read of a shop (an inclusion projection: tokens are never named).
SHOP_PUBLIC_FIELDS: tuple[str, ...] = (
    "_id", "name", "region", "api_version", "source", "status", "status_reason",
    "access_expires_at", "refresh_expires_at", "granted_scopes", "seller_name",
    "connected_at", "updated_at", "last_refresh_at",
)
SHOP_SECRET_FIELDS: tuple[str, ...] = ("access_token_enc", "refresh_token_enc")

SHOPS_INDEXES: tuple[tuple[list[tuple[str, int]], str], ...] = (
    ([("status", 1), ("refresh_due_at", 1)], "status_refresh_due"),
)
