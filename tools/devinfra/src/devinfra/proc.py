"""Subprocess helpers: process-group launch tied to our life, graceful stop, ports, polling."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devinfra import pidfile

log = logging.getLogger("devinfra")

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

# PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process: every
# child is forked from this one thread, which lives as long as the process (callers may well
# start servers from short-lived threads, e.g. ``asyncio.to_thread``).
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devinfra-spawner")


class ServerStartError(RuntimeError):
    """A server failed to start or to become ready."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LISTEN_PORTS = 12_000  # how many ports just below the ephemeral range listening ports come from
MIN_LISTEN_PORTS = 1_000  # fewer than this below the range: bind port 0 instead
# Ports `free_port` has handed out in this process. A picked port stays free until its server
# binds it, so without this two picks in a row (a test's Kafka and query API) could be the same.
_handed_out: set[int] = set()
_handing_out = threading.Lock()


def _ephemeral_start() -> int:
    """Where the ports the kernel gives outgoing connections begin (Linux; 32768 otherwise)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1", exclude: Sequence[int] = ()) -> int:
    """A currently free TCP port on ``host`` for a server to listen on, from just below the
    kernel's ephemeral range. One inside that range (what binding port 0 gives) is free when
    picked, but the kernel may hand it to an outgoing connection before a slow server binds
    it: Kafka's JVM takes seconds, and under the test suite's many connections it once failed
    with "Address already in use". Never one this process was handed before; still racy
    between two processes picking at once (random, so rarely)."""
    high = _ephemeral_start()
    low = max(1024, high - LISTEN_PORTS)
    with _handing_out:
        for _ in range(200):
            if high - low >= MIN_LISTEN_PORTS:
                port = random.randrange(low, high)
                if port in exclude or port in _handed_out or not port_is_free(port, host):
                    continue
            else:  # an ephemeral range that starts low leaves no room below it
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((host, 0))
                    port = s.getsockname()[1]
                if port in exclude or port in _handed_out:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError("could not find a free port")


def pick_port(preferred: int | None, exclude: Sequence[int] = ()) -> int:
    """``preferred`` when given and free, else a free port (`free_port`)."""
    if preferred is not None and preferred not in exclude and port_is_free(preferred):
        return preferred
    return free_port(exclude=exclude)


def tcp_connectable(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "<no log>"
    return "\n".join(lines[-n:])


def _die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``sig`` when this process dies (Linux)."""
    if _prctl is None:
        return None
    prctl = _prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # we died between fork and prctl
            os.kill(os.getpid(), sig)

    return preexec


class ManagedProcess:
    """A subprocess in its own process group, output appended to a log file, its pid in
    ``pid_file``. It gets ``stop_signal`` when we die, however we die (Linux), and
    :meth:`start` first stops the process an earlier run left behind in ``pid_file``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_file: Path,
        pid_file: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_file = log_file
        self.pid_file = pid_file
        self.cwd = cwd
        self.env = env
        self.user = user
        self.stop_signal = stop_signal
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.running:
            return
        pidfile.stop_leftovers([self.pid_file])
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log.debug("starting %s: %s", self.name, self.argv)
        with self.log_file.open("ab") as out:
            self.proc = _spawner.submit(
                subprocess.Popen,
                self.argv,
                user=self.user,
                group=self.user,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent(self.stop_signal),
            ).result()
        pidfile.write(self.pid_file, self.proc.pid, self.stop_signal)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def check_alive(self) -> None:
        """Raise :class:`ServerStartError` with the log tail if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerStartError(
                f"{self.name} exited with code {self.proc.returncode}; "
                f"log {self.log_file}:\n{tail(self.log_file)}"
            )

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0, *, kill: bool = False) -> None:
        """Send ``stop_signal`` to the process group (SIGKILL if ``kill``); SIGKILL on timeout."""
        self.send_stop(kill=kill)
        self.wait_stopped(timeout)

    def send_stop(self, *, kill: bool = False) -> None:
        if self.running:
            self._signal_group(signal.SIGKILL if kill else self.stop_signal)

    def wait_stopped(self, timeout: float) -> None:
        """Wait for the exit :meth:`send_stop` asked for; SIGKILL after ``timeout`` s."""
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning(
                "%s (pid %d) did not stop within %.0fs of %s, killing",
                self.name, self.proc.pid, timeout, self.stop_signal.name,
            )  # fmt: skip
            self._signal_group(signal.SIGKILL)
            self.proc.wait(timeout=10)
        # kill stragglers left in the group (orphaned children), if any
        self._signal_group(signal.SIGKILL)
        pidfile.remove(self.pid_file, self.proc.pid)
        self.proc = None


def stop_all(processes: Sequence[ManagedProcess], timeout: float = 10.0) -> None:
    """Stop ``processes`` at once: each gets its stop signal, SIGKILL after ``timeout`` s."""
    for process in processes:
        process.send_stop()
    deadline = time.monotonic() + timeout
    for process in processes:
        process.wait_stopped(max(0.0, deadline - time.monotonic()))


def wait_until(
    what: str,
    probe: Callable[[], bool],
    *,
    timeout: float,
    proc: ManagedProcess | None = None,
    interval: float = 0.2,
) -> None:
    """Poll ``probe`` until it returns True; fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None:
            proc.check_alive()
        try:
            if probe():
                return
        except Exception as exc:  # probes may raise while the server warms up
            log.debug("%s probe: %r", what, exc)
        if time.monotonic() > deadline:
            extra = f"; log {proc.log_file}:\n{tail(proc.log_file)}" if proc is not None else ""
            raise ServerStartError(f"{what} not ready after {timeout:.0f}s{extra}")
        time.sleep(interval)
