"""Reading the read model's pointer: which returns collection is the active one
(`meta.active_read_model`, switched by replay)."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from contracts.read_model import ACTIVE_READ_MODEL_ID, DEFAULT_RETURNS_COLLECTION, META_COLLECTION


async def active_returns_collection(db: AsyncDatabase[dict[str, Any]]) -> str:
    """The name of the active returns collection ("returns" before any replay)."""
    meta = await db[META_COLLECTION].find_one({"_id": ACTIVE_READ_MODEL_ID})
    name = meta.get("collection") if meta else None
    if not isinstance(name, str) or not name or name.startswith(("system.", "$")):
        return DEFAULT_RETURNS_COLLECTION
    return name
