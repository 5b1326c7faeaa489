"""Bearer-token authentication, per-shop authorisation, and who may act.

`QUERY_API_TOKENS` maps each token to its grant: the shop ids it may see ("*" = all), its role
(`read`, or `act`: may also approve and reject returns) and a label, recorded with each decision
it takes (the token itself never is), e.g.
`{"ops": {"shops": ["*"], "role": "act", "label": "Ops team"}, "bi": ["shop1", "shop2"]}`.
A plain list of shops (the first form) is a read-only grant labelled after a digest of the token.

No or an unknown token: 401. A shop the token was not granted, or acting without the role: 403.
A token limited to some shops must name the shop it asks about, so no query can ever reach
another seller's returns.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

ALL_SHOPS = "*"
Role = Literal["read", "act"]

bearer = HTTPBearer(auto_error=False, description="a token of QUERY_API_TOKENS")


class TokenGrant(BaseModel):
    """What one token of QUERY_API_TOKENS may do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shops: list[str] = Field(min_length=1)
    role: Role = "read"
    label: str | None = Field(default=None, min_length=1, max_length=128)


def grant_of(token: str, value: TokenGrant | list[str]) -> TokenGrant:
    """The grant of a QUERY_API_TOKENS entry, in either form, with a label."""
    grant = value if isinstance(value, TokenGrant) else TokenGrant(shops=list(value))
    if grant.label is None:
        digest = hashlib.sha256(token.encode()).hexdigest()[:8]
        grant = grant.model_copy(update={"label": f"token {digest}"})
    return grant


@dataclass(frozen=True)
class Principal:
    shops: frozenset[str]
    role: Role = "read"
    label: str = "unknown"

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

    def require_act(self, shop_id: str) -> str:
        """The shop a decision may be taken on: granted, and the token may act (403 if not)."""
        self.require(shop_id)
        if self.role != "act":
            raise HTTPException(403, f"this token ({self.label}) may read but not act: it needs "
                                "the role \"act\" in QUERY_API_TOKENS")
        return shop_id


def find_principal(tokens: dict[str, TokenGrant], presented: str) -> Principal | None:
    """Constant-time comparison against every configured token."""
    found: Principal | None = None
    for token, grant in tokens.items():
        if hmac.compare_digest(token.encode(), presented.encode()):
            found = Principal(frozenset(grant.shops), grant.role, grant.label or "unknown")
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
