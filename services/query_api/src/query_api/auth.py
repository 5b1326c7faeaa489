"""Bearer-token authentication and per-shop authorisation.

`QUERY_API_TOKENS` maps each token to the shop ids it may read, e.g.
`{"token-a": ["shop1", "shop2"], "ops": ["*"]}`. No or an unknown token: 401. A shop the
token was not granted: 403. A token limited to some shops must name the shop it asks about,
so no query can ever reach another seller's returns.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ALL_SHOPS = "*"

bearer = HTTPBearer(auto_error=False, description="a token of QUERY_API_TOKENS")


@dataclass(frozen=True)
class Principal:
    shops: frozenset[str]

    @property
    def all_shops(self) -> bool:
        return ALL_SHOPS in self.shops

    def require(self, shop_id: str | None) -> str | None:
        """The shop a query may read: the one asked for if granted (403 if not); None means
        every shop and only a token granted all shops may ask for that."""
        if shop_id is None:
            if self.all_shops:
                return None
            granted = ", ".join(sorted(self.shops))
            raise HTTPException(400, f"shop_id is required for this token (granted: {granted})")
        if not (self.all_shops or shop_id in self.shops):
            raise HTTPException(403, f"this token is not granted shop {shop_id}")
        return shop_id


def find_principal(tokens: dict[str, list[str]], presented: str) -> Principal | None:
    """Constant-time comparison against every configured token."""
    found: Principal | None = None
    for token, shops in tokens.items():
        if hmac.compare_digest(token.encode(), presented.encode()):
            found = Principal(frozenset(shops))
    return found


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    unauthorized = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise HTTPException(401, "missing bearer token (Authorization: Bearer <token>)",
                            headers=unauthorized)
    found = find_principal(request.app.state.tokens, credentials.credentials)
    if found is None:
        raise HTTPException(401, "unknown token", headers=unauthorized)
    return found


Caller = Annotated[Principal, Depends(principal)]
