"""The simulator's own endpoints under /_sim: health, faults, generating and advancing returns,
shops, one return with its history, statistics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request

from tiktok_sim.guards import Gate, Refusal
from tiktok_sim.protocol import shop_cipher_for
from tiktok_sim.state import AdvanceRequest, Faults, GenerateRequest, SimState
from tiktok_sim.store import generate_returns, legacy_record
from tiktok_sim.store import v202309_record as render_202309

router = APIRouter(prefix="/_sim")


def _sim(request: Request) -> SimState:
    sim: SimState = request.app.state.sim
    return sim


Sim = Annotated[SimState, Depends(_sim)]


@router.get("/health")
async def health(sim: Sim) -> dict[str, Any]:
    return {"status": "ok", "returns": len(sim.store)}


@router.get("/faults")
async def get_faults(sim: Sim) -> dict[str, Any]:
    return sim.faults.model_dump()


@router.post("/faults")
async def set_faults(sim: Sim, request: Request) -> dict[str, Any]:
    try:
        patch = Faults.model_validate(Gate.json_body(await request.body()))
    except (Refusal, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    for name in patch.model_fields_set:
        setattr(sim.faults, name, getattr(patch, name))
    sim.apply_shares()
    return sim.faults.model_dump()


@router.delete("/faults")
async def reset_faults(sim: Sim) -> dict[str, Any]:
    for name, info in Faults.model_fields.items():
        setattr(sim.faults, name, info.default)
    sim.apply_shares()
    return sim.faults.model_dump()


@router.post("/returns/generate")
async def generate(sim: Sim, req: GenerateRequest) -> dict[str, Any]:
    try:
        created = generate_returns(sim.store, sim.driver.rng, req.shop_id, req.count,
                                   req.api_version, now=int(sim.clock()))
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    return {
        "shop_id": req.shop_id,
        "api_version": req.api_version,
        "shop_cipher": shop_cipher_for(req.shop_id),
        "generated": len(created),
        "total": len(sim.store.returns(req.shop_id)),
    }


@router.post("/returns/advance")
async def advance(sim: Sim, req: AdvanceRequest) -> dict[str, Any]:
    return await sim.advance(req.count, req.shop_id, req.send_webhooks)


@router.get("/shops")
async def shops(sim: Sim) -> list[dict[str, Any]]:
    return [
        {"shop_id": shop_id, "api_version": version, "shop_cipher": shop_cipher_for(shop_id),
         "returns": len(sim.store.returns(shop_id)), "statuses": sim.store.status_counts(shop_id)}
        for shop_id, version in sim.store.shops().items()
    ]


@router.get("/returns/{shop_id}/{return_id}")
async def one_return(sim: Sim, shop_id: str, return_id: str) -> dict[str, Any]:
    ret = sim.store.get(shop_id, return_id)
    if ret is None:
        raise HTTPException(404, "no such return")
    render = legacy_record if ret.api_version == "legacy" else render_202309
    return {"api_version": ret.api_version, "record": render(ret),
            "history": [{"status": s.status.value, "update_time": s.update_time,
                         "actor": s.actor} for s in ret.history]}


@router.get("/stats")
async def get_stats(sim: Sim) -> dict[str, Any]:
    return {**sim.stats.as_dict(), "returns": len(sim.store),
            "webhook_target": sim.settings.webhook_url}
