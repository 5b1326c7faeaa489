"""What every local server shares: one managed process, started, awaited, stopped."""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from devinfra.proc import ManagedProcess, ServerStartError

HOST = "127.0.0.1"

T = TypeVar("T")


def run_checked(argv: list[str], *, user: str | None = None, cwd: Path | None = None) -> str:
    """Run a short command to completion; its stdout, or :class:`ServerStartError`."""
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        user=user,
        group=user,
        cwd=cwd,
    )
    if proc.returncode != 0:
        raise ServerStartError(
            f"command failed ({proc.returncode}): {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout


def run_async_probe(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async probe on a private event loop in a worker thread.

    Safe to call from sync code that itself runs inside an event loop thread.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro_factory()).result()


class Server:
    """A server run as one managed process: start it, wait until it answers, stop it.

    Stopping sends the process's stop signal and waits ``stop_timeout`` s before SIGKILL.
    """

    start_timeout = 60.0
    stop_timeout = 10.0
    _proc: ManagedProcess | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.running

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start_process(self) -> None:
        raise NotImplementedError

    def wait_ready(self, timeout: float) -> None:
        raise NotImplementedError

    def start(self, timeout: float | None = None) -> None:
        self.start_process()
        self.wait_ready(self.start_timeout if timeout is None else timeout)

    def stop(self, *, kill: bool = False, timeout: float | None = None) -> None:
        """Graceful, or ``kill=True`` for a crash (SIGKILL)."""
        if self._proc is not None:
            self._proc.stop(self.stop_timeout if timeout is None else timeout, kill=kill)
            self._proc = None
