"""Where a step's CPU time went: CPU seconds by kind of process, for the profile a figure needs.

Counts this process and all its descendants (the servers of `bench.common.servers`, the services
of `bench.services`), polled every half second, so a process that exits during the step counts
up to its last poll. Kinds: `python -m <module>` by module, the rest by executable (postgres
sums its backends; java is Kafka; ferretdb-embed-* is FerretDB).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import defaultdict

import psutil

POLL_S = 0.5
SHOWN_S = 0.05  # kinds that spent less are left out


def _kind(process: psutil.Process, me: int) -> str:
    if process.pid == me:
        return "bench"
    argv = process.cmdline()
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1]
    name = process.name()
    return {"java": "kafka"}.get(name, "ferretdb" if name.startswith("ferretdb") else name)


class CpuMeter:
    """`async with CpuMeter() as cpu: ...`, then `cpu.seconds`: CPU seconds by kind."""

    def __init__(self) -> None:
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._kinds: dict[int, str] = {}
        self._task: asyncio.Task[None] | None = None
        self.seconds: dict[str, float] = {}

    def _poll(self) -> None:
        me = psutil.Process(os.getpid())
        for process in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                used = times.user + times.system
                self._kinds.setdefault(process.pid, _kind(process, me.pid))
                self._first.setdefault(process.pid, used)
                self._last[process.pid] = used

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            self._poll()

    async def __aenter__(self) -> CpuMeter:
        self._poll()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._poll()
        totals: defaultdict[str, float] = defaultdict(float)
        for pid, used in self._last.items():
            totals[self._kinds[pid]] += used - self._first[pid]
        ranked = sorted(totals.items(), key=lambda kind_s: -kind_s[1])
        self.seconds = {kind: round(s, 1) for kind, s in ranked if s >= SHOWN_S}

    def summary(self) -> str:
        return ", ".join(f"{kind} {s:.1f}" for kind, s in self.seconds.items())
