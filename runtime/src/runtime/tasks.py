"""Stopping a background task: cancel it and wait until it has ended."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for it to end; its cancellation is not re-raised here."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
