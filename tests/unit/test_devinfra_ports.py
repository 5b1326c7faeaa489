"""The ports devinfra (and the tests' services) listen on: free, and outside the range the
kernel hands outgoing connections, so none is taken between being picked and being bound."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devinfra import proc
from devinfra.proc import free_port


def test_a_picked_port_is_free_and_below_the_ephemeral_range() -> None:
    start = proc._ephemeral_start()
    for _ in range(50):
        port = free_port()
        assert start - proc.LISTEN_PORTS <= port < start
        with socket.socket() as sock:
            # as the servers bind (uvicorn, Kafka, PostgreSQL): a port a stopped server used
            # may still hold connections in TIME_WAIT, which only this option lets a new
            # listener share (the suite's other worker stops servers all the time)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))


def test_excluded_ports_are_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proc, "LISTEN_PORTS", 1_000)
    start = proc._ephemeral_start()
    excluded = range(start - 1_000, start - 500)
    for _ in range(50):
        assert start - 500 <= free_port(exclude=excluded) < start


def test_a_port_is_never_handed_out_twice_even_while_nothing_binds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a test picks all its servers' ports before any of them binds (test_runner: six at once)
    monkeypatch.setattr(proc, "LISTEN_PORTS", 1_000)
    monkeypatch.setattr(proc, "_handed_out", set())
    picked = [free_port() for _ in range(300)]  # of 1,000: repeats were all but certain
    assert len(set(picked)) == 300


def test_without_room_below_the_range_a_port_comes_from_the_kernel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    low_range = tmp_path / "ip_local_port_range"
    low_range.write_text("1100\t60999\n")
    monkeypatch.setattr(proc, "EPHEMERAL_RANGE", low_range)
    port = free_port()
    assert 1100 <= port <= 60999
