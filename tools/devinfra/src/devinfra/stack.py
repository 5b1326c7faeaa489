"""`make run`: the whole system on its embedded defaults, until it is told to stop.

Kafka, PostgreSQL and FerretDB (data under .data/), then the state machine, the query API and
the ingestor, and the bundled TikTok Shop simulator when no real TikTok API is configured
(TIKTOK_API_BASE_URL unset). Each service logs to .data/logs/<name>.log.

Nothing outlives the run, however it ends: SIGINT, SIGTERM or SIGHUP stop everything
cleanly, so does the death of our parent (`make`, a terminal); if we are killed outright
(SIGKILL) every server and service gets its stop signal from the kernel (PR_SET_PDEATHSIG,
see :mod:`devinfra.proc`). Each process, the runner too, leaves a pid file in the data dir;
a new run first stops whatever an earlier one left behind, or the earlier run itself.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import urllib.request
from http import HTTPStatus
from pathlib import Path
from types import FrameType

from devinfra import pidfile
from devinfra.infra import Infra
from devinfra.proc import ManagedProcess, stop_all
from devinfra.services import DEV_SHOPS, DEV_TOKEN, Credentials, Service, env_port, layers

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PARENT_POLL_SECONDS = 0.5


class StopRequested(BaseException):  # like KeyboardInterrupt: not caught as an error
    """Raised in the main thread by a stop signal, wherever it is (also during start-up)."""


def _on_stop_signal(signum: int, _frame: FrameType | None) -> None:
    for sig in STOP_SIGNALS:  # we are stopping: a second Ctrl-C does not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    raise StopRequested(signal.Signals(signum).name)


def _watch_parent() -> None:
    """SIGHUP ourselves when our parent dies (we are then re-parented)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        print(f"parent process {parent} is gone", flush=True)
        os.kill(os.getpid(), signal.SIGHUP)

    threading.Thread(target=watch, name="devinfra-parent-watch", daemon=True).start()


def _start(spec: Service, data_dir: Path) -> ManagedProcess:
    process = ManagedProcess(
        spec.name,
        [sys.executable, "-m", spec.module],
        log_file=data_dir / "logs" / f"{spec.name}.log",
        pid_file=data_dir / "services" / f"{spec.name}.pid",
        env={**os.environ, **spec.env},
    )
    process.start()
    return process


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == HTTPStatus.OK)
    except OSError:
        return False


def run(data_dir: Path = Path(".data")) -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_stop_signal)
    _watch_parent()
    started = time.monotonic()
    launched: list[list[ManagedProcess]] = []  # per layer
    runner_pid_file = data_dir / "runner" / "devinfra.pid"
    infra: Infra | None = None
    try:
        # before choosing ports: what an earlier run left may hold them; an earlier runner
        # still running on this data dir is stopped too (it then stops what it started)
        pidfile.stop_leftovers([*data_dir.glob("*/*.pid")])
        pidfile.write(runner_pid_file, os.getpid(), signal.SIGTERM)
        credentials = Credentials.from_environment(os.environ)
        if announcement := credentials.announcement():
            print(announcement, flush=True)
        logs = data_dir / "logs"
        taken: list[int] = []
        infra = Infra(
            data_dir,
            kafka_port=env_port("KAFKA_PORT", 9092, taken),
            mongo_port=env_port("MONGO_PORT", 27017, taken),
            durable=True,
        )
        infra.start()
        service_layers = layers(infra, credentials, taken)
        specs = [spec for layer in service_layers for spec in layer]
        for layer in service_layers:
            launched.append([_start(spec, data_dir) for spec in layer])
        deadline = time.monotonic() + 90
        pending = list(specs)
        while pending and time.monotonic() < deadline:
            pending = [s for s in pending if not _ready(s.ready_url)]
            time.sleep(0.5)
        for spec in pending:
            print(f"! {spec.name} is not ready yet: see {logs / spec.name}.log", flush=True)
        _print_urls(specs, infra, credentials, logs, time.monotonic() - started)
        exited: set[str] = set()
        while not (exited_servers := infra.exited()):
            time.sleep(1.0)
            for process in (p for processes in launched for p in processes):
                if process.name not in exited and not process.running:
                    exited.add(process.name)
                    print(f"! {process.name} exited; see {process.log_file}", flush=True)
        print(f"! {', '.join(exited_servers)} exited (see {data_dir}/); stopping", flush=True)
    except StopRequested as stop:
        print(f"stopping ({stop})...", flush=True)
    finally:
        for processes in reversed(launched):
            stop_all(processes)
        if infra is not None:
            infra.stop()
        pidfile.remove(runner_pid_file, os.getpid())
        print(f"stopped ({time.monotonic() - started:.0f}s after start).", flush=True)


def _print_urls(
    specs: list[Service], infra: Infra, credentials: Credentials, logs: Path, seconds: float
) -> None:
    env = {s.name: s.env for s in specs}
    query = f"http://127.0.0.1:{env['query_api']['QUERY_API_PORT']}"
    ingestor = f"http://127.0.0.1:{env['ingestor']['INGESTOR_PORT']}"
    token = DEV_TOKEN if "QUERY_API_TOKENS" in credentials.defaulted else "<your token>"
    lines = [
        f"TikTok returns is up ({seconds:.0f}s). Ctrl-C stops everything.",
        f"  Dashboard        {query}/?token={token}",
        f"  Shops            {query}/shops",
        f"  Query API docs   {query}/docs",
        f"  Webhook endpoint {ingestor}/webhooks/tiktok",
        f"  Metrics          {query}/metrics  {ingestor}/metrics  "
        f"http://127.0.0.1:{env['state_machine']['STATE_MACHINE_METRICS_PORT']}/metrics",
        f"  Kafka            {infra.kafka_bootstrap}",
        f"  MongoDB (FerretDB) {infra.mongodb_url}",
        f"  Logs             {logs}/",
    ]
    if "tiktok_sim" in env:
        lines.append(f"  TikTok simulator http://127.0.0.1:{env['tiktok_sim']['SIM_PORT']}/_sim/stats"
                     " (no TIKTOK_API_BASE_URL set: simulated shops "
                     + ", ".join(shop for shop, _ in DEV_SHOPS) + ")")
    print("\n".join(lines), flush=True)
