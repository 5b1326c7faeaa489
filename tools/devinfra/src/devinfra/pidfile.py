"""Pid files: which process a run started, so the next run can stop what an earlier one left.

A pid file holds the pid, the process's start time and the signal that stops it gracefully.
A pid reused since by an unrelated process (another start time) is not ours and is left alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from collections.abc import Iterable
from pathlib import Path

import psutil

log = logging.getLogger("devinfra")

STOP_TIMEOUT = 10.0
# a pid is ours only if its process started when the file says (pids are reused)
START_TIME_TOLERANCE_S = 0.01


def write(path: Path, pid: int, stop_signal: signal.Signals) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "pid": pid,
        "create_time": psutil.Process(pid).create_time(),
        "stop_signal": stop_signal.name,
    }
    path.write_text(json.dumps(record))


def remove(path: Path, pid: int) -> None:
    """Remove ``path`` if it still names ``pid`` (a newer run may have written its own)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if int(json.loads(path.read_text())["pid"]) == pid:
            path.unlink()


def _recorded(path: Path) -> tuple[psutil.Process, signal.Signals] | None:
    """The live process ``path`` names and its stop signal, or None if there is none."""
    try:
        record = json.loads(path.read_text())
        process = psutil.Process(int(record["pid"]))
        if abs(process.create_time() - float(record["create_time"])) > START_TIME_TOLERANCE_S:
            return None
        return process, signal.Signals[record["stop_signal"]]
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return None


def stop_leftovers(paths: Iterable[Path]) -> None:
    """Stop the processes these pid files name, left running by an earlier run, and remove
    the files. Each gets its stop signal at once, SIGKILL after :data:`STOP_TIMEOUT` s; one
    line says what is stopped."""
    found: list[psutil.Process] = []
    for path in paths:
        if (recorded := _recorded(path)) is not None:
            process, stop_signal = recorded
            log.warning(
                "stopping %s (pid %d) left running by an earlier run", path.stem, process.pid
            )
            _signal_group(process.pid, stop_signal)
            found.append(process)
        path.unlink(missing_ok=True)
    _, alive = psutil.wait_procs(found, timeout=STOP_TIMEOUT)
    for process in alive:
        _signal_group(process.pid, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=STOP_TIMEOUT)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal ``pid``'s process group if it leads one (our children do), else ``pid`` alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
