"""Run the project's services as real processes for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def listed_returns(query_url: str, headers: dict[str, str], shop_id: str) -> list[dict[str, Any]]:
    """Every return of a shop from the query API's list, page by page."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        # 100 a page: the query API's find (limit + 1) then fits pymongo's first batch (101).
        # A getMore may reach another pooled connection, which FerretDB 1.24 answers with
        # CursorNotFound (its cursors belong to a connection).
        params: dict[str, Any] = {"shop_id": shop_id, "limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = httpx.get(f"{query_url}/api/v1/returns", params=params, headers=headers,
                             timeout=30)
        response.raise_for_status()
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return items


@dataclass
class ServiceProcess:
    """A service started as `python -m <module>` with its log in a file."""

    module: str
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> ServiceProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module], env={**os.environ, **self.env},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit, as in a crash."""
        self._signal(signal.SIGKILL)

    def stop(self, timeout: float = 15) -> None:
        if not self.running():
            return
        self._signal(signal.SIGTERM)
        try:
            assert self.proc is not None
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            if sig == signal.SIGKILL:
                self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
