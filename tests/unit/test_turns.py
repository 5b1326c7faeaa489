"""Turns per key: one key's holders one after another, other keys beside them."""

from __future__ import annotations

import asyncio
import gc

from runtime.turns import KeyedTurns


async def test_one_keys_holders_take_turns_while_another_key_goes_beside_them() -> None:
    turns = KeyedTurns()
    steps: list[str] = []

    async def hold(key: str, name: str) -> None:
        async with turns(key):
            steps.append(f"{name} in")
            await asyncio.sleep(0.02)
            steps.append(f"{name} out")

    await asyncio.gather(hold("a", "a1"), hold("a", "a2"), hold("b", "b1"))
    assert steps.index("a1 out") < steps.index("a2 in")
    assert steps.index("b1 in") < steps.index("a1 out")


async def test_a_key_nobody_holds_any_more_is_forgotten() -> None:
    turns = KeyedTurns()
    async with turns("return-1"):
        assert turns("return-1").locked()
    gc.collect()
    assert not turns._locks
