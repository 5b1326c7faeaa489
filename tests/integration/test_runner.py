"""`make run` (``python -m devinfra run``) on real servers: nothing it started outlives it,
however it dies, and a new run on the same data dir comes back with every return."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from devinfra import PostgresServer, install
from devinfra.proc import free_port
from ingestor.signature import webhook_signature
from tests.integration.services import http_ok, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
# make run's development credentials (devinfra.services.DEV_CREDENTIALS)
APP_KEY, APP_SECRET, TOKEN = "dev-app-key", "dev-app-secret", "dev-token"
SHOP = "7494560109739990000"  # not one of the simulator's shops
CREDENTIALS = ("TIKTOK_APP_KEY", "TIKTOK_APP_SECRET", "TIKTOK_ACCESS_TOKEN", "QUERY_API_TOKENS",
               "SHOP_TOKEN_KEYS", "OAUTH_STATE_SECRET")
START_TIMEOUT = 120.0
NO_TIKTOK_API = "http://127.0.0.1:9"  # set: no simulator (less load); unused by these tests
GONE_TIMEOUT = 45.0  # services stop together (10 s at most), then each server (10 s at most)


@dataclass
class Run:
    proc: subprocess.Popen[bytes]
    output: Path
    query_url: str
    ingestor_url: str

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def processes(self) -> list[psutil.Process]:
        """The run's process and every process it started, down to PostgreSQL's backends."""
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the run exited ({self.proc.returncode}):\n{self.text()}")
            return "is up" in self.text() and http_ok(f"{self.query_url}/readyz")

        wait_until(ready, START_TIMEOUT, "make run to be up")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: its root is 0700 and PostgreSQL runs as the postgres user.
    path = Path(tempfile.mkdtemp(prefix="returns-run-"))
    path.chmod(0o755)
    yield path / "data"
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ports() -> dict[str, str]:
    names = ("KAFKA_PORT", "MONGO_PORT", "SIM_PORT", "QUERY_API_PORT", "INGESTOR_PORT",
             "STATE_MACHINE_METRICS_PORT")  # fmt: skip
    return {name: str(free_port()) for name in names}


def start(argv: list[str], data_dir: Path, ports: dict[str, str], **env: str) -> Run:
    environ = {k: v for k, v in os.environ.items() if k not in CREDENTIALS}
    environ |= {**ports, "RETURNS_DATA_DIR": str(data_dir), **env}
    output = data_dir.parent / f"run-{uuid.uuid4().hex[:6]}.out"  # removed with the data dir
    with output.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=environ, stdout=out, stderr=subprocess.STDOUT)
    return Run(proc, output, f"http://127.0.0.1:{ports['QUERY_API_PORT']}",
               f"http://127.0.0.1:{ports['INGESTOR_PORT']}")  # fmt: skip


def start_devinfra(data_dir: Path, ports: dict[str, str], **env: str) -> Run:
    return start([sys.executable, "-m", "devinfra", "run"], data_dir, ports, **env)


def running(process: psutil.Process) -> bool:
    """Whether ``process`` still runs (a zombie waiting to be reaped does not)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def seconds_until_gone(processes: list[psutil.Process], timeout: float = GONE_TIMEOUT) -> float:
    """How long until none of ``processes`` runs; fails after ``timeout`` s."""
    t0 = time.monotonic()
    alive = processes
    while alive and time.monotonic() - t0 < timeout:
        time.sleep(0.1)
        alive = [p for p in alive if running(p)]
    assert not alive, f"still running {timeout:.0f}s later: {[p.cmdline() for p in alive]}"
    return time.monotonic() - t0


def post_webhook(run: Run, return_id: str) -> None:
    body = json.dumps({
        "type": 12, "tts_notification_id": uuid.uuid4().hex, "shop_id": SHOP,
        "timestamp": 1_732_680_000,
        "data": {"order_id": f"o-{return_id}", "return_id": return_id, "return_role": "BUYER",
                 "return_type": "RETURN_AND_REFUND", "return_status": "AWAITING_BUYER_SHIP",
                 "create_time": 1_732_600_000, "update_time": 1_732_679_990},
    }).encode()  # fmt: skip
    response = httpx.post(
        f"{run.ingestor_url}/webhooks/tiktok",
        content=body,
        headers={"Authorization": webhook_signature(APP_KEY, APP_SECRET, body),
                 "Content-Type": "application/json"},
        timeout=30,
    )  # fmt: skip
    assert response.status_code == 200, response.text


def listed_returns(run: Run) -> set[str]:
    try:
        response = httpx.get(
            f"{run.query_url}/api/v1/returns",
            params={"shop_id": SHOP, "limit": 200},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
    except httpx.HTTPError:
        return set()
    if response.status_code != 200:
        return set()
    items: list[dict[str, Any]] = response.json()["items"]
    return {item["return_id"] for item in items}


def wait_listed(run: Run, return_ids: set[str]) -> None:
    wait_until(lambda: return_ids <= listed_returns(run), 60, f"{len(return_ids)} returns listed")


def stop(run: Run, sig: signal.Signals = signal.SIGTERM) -> float:
    processes = run.processes()
    run.proc.send_signal(sig)
    seconds = seconds_until_gone(processes)
    run.proc.wait(5)
    return seconds


def test_after_a_sigkill_of_the_run_nothing_remains_and_a_new_run_has_every_return(
    data_dir: Path, ports: dict[str, str]
) -> None:
    no_simulator = {"TIKTOK_API_BASE_URL": NO_TIKTOK_API}
    run = start_devinfra(data_dir, ports, **no_simulator)
    try:
        run.wait_ready()
        before = {str(uuid.uuid4().int)[:19] for _ in range(5)}
        for return_id in before:
            post_webhook(run, return_id)
        wait_listed(run, before)

        processes = run.processes()
        run.proc.kill()
        gone = seconds_until_gone(processes)
        print(f"\n{len(processes)} processes of the SIGKILLed run gone after {gone:.1f}s")
        assert "Traceback" not in run.text()

        t0 = time.monotonic()
        run = start_devinfra(data_dir, ports, **no_simulator)
        run.wait_ready()
        ready = time.monotonic() - t0
        wait_listed(run, before)
        print(f"after the SIGKILL, the new run is ready in {ready:.1f}s and lists every return "
              f"in {time.monotonic() - t0:.1f}s")
        after = str(uuid.uuid4().int)[:19]
        post_webhook(run, after)
        wait_listed(run, {*before, after})
        assert listed_returns(run) == {*before, after}
        assert "Traceback" not in run.text(), run.text()
    finally:
        if run.proc.poll() is None:
            print(f"SIGTERM: every process of the run gone after {stop(run):.1f}s")
    assert run.proc.returncode == 0, run.text()
    assert "stopped" in run.text()


def test_a_new_run_stops_the_server_an_earlier_run_left_running(
    data_dir: Path, ports: dict[str, str]
) -> None:
    # an earlier run's PostgreSQL on this data dir, still running (as after a crash of a runner
    # that had no pid files and no parent-death signal: `lock file "postmaster.pid" exists`)
    leftover = PostgresServer(data_dir / "postgres", install(), durable=False)
    leftover.start()
    assert leftover.pid is not None
    leftover_pid = leftover.pid
    try:
        run = start_devinfra(data_dir, ports, TIKTOK_API_BASE_URL=NO_TIKTOK_API)
        try:
            run.wait_ready()
        finally:
            stop(run)
        lines = [line for line in run.text().splitlines() if "left running" in line]
        assert len(lines) == 1, run.text()
        assert f"stopping postgres (pid {leftover_pid}) left running by an earlier run" in lines[0]
        assert "Traceback" not in run.text(), run.text()
        assert not running(psutil.Process(leftover_pid))  # our child: a zombie until reaped
    finally:
        leftover.stop()


def test_a_second_run_on_the_same_data_dir_takes_over_from_the_first(
    data_dir: Path, ports: dict[str, str]
) -> None:
    first = start_devinfra(data_dir, ports, TIKTOK_API_BASE_URL=NO_TIKTOK_API)
    second: Run | None = None
    try:
        first.wait_ready()
        first_processes = first.processes()
        second = start_devinfra(data_dir, ports, TIKTOK_API_BASE_URL=NO_TIKTOK_API)
        second.wait_ready()
        seconds_until_gone(first_processes)
        assert first.proc.wait(5) == 0, first.text()
        assert f"stopping devinfra (pid {first.proc.pid}) left running" in second.text()
        assert "Traceback" not in first.text() + second.text()
        # the first run's ports were free again: the second took the same ones
        assert f"Dashboard        {first.query_url}/" in second.text(), second.text()
    finally:
        for run in (first, second):
            if run is not None and run.proc.poll() is None:
                stop(run)


def test_when_make_is_killed_the_run_stops_everything(
    data_dir: Path, ports: dict[str, str]
) -> None:
    make = start(["make", "--no-print-directory", "run"], data_dir, ports)
    try:
        make.wait_ready()
        processes = make.processes()
        assert any("devinfra" in " ".join(p.cmdline()) for p in processes)
        assert any("tiktok_sim" in " ".join(p.cmdline()) for p in processes)
        make.proc.kill()
        gone = seconds_until_gone(processes)
        print(f"\nSIGKILL of make: its {len(processes) - 1} processes gone after {gone:.1f}s")
    finally:
        if make.proc.poll() is None:
            stop(make)
    assert "parent process" in make.text(), make.text()
    assert "stopped" in make.text(), make.text()
    assert "Traceback" not in make.text(), make.text()
