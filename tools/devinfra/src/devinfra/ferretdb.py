"""FerretDB v1 (built from tools/ferretdb) on PostgreSQL, speaking the MongoDB wire protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pymongo import MongoClient

from devinfra.install import InstalledPaths
from devinfra.postgres import FERRET_DB
from devinfra.proc import ManagedProcess, ServerStartError, pick_port, tcp_connectable, wait_until
from devinfra.server import HOST, Server


class FerretDBServer(Server):
    """FerretDB (embedded v1, PostgreSQL backend) speaking the MongoDB wire protocol."""


    def __init__(
        self,
        data_dir: Path,
        paths: InstalledPaths,
        *,
        postgresql_url: str,
        port: int | None,
        log_level: str = "error",  # FerretDB logs every unsupported command at WARN
    ) -> None:
        self.log_level = log_level
        self.data_dir = data_dir
        self.paths = paths
        self.postgresql_url = postgresql_url
        self.port = pick_port(port)
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"mongodb://{HOST}:{self.port}/"

    def start_process(self) -> None:
        if self.running:
            return
        self._proc = ManagedProcess(
            "ferretdb",
            [
                str(self.paths.ferretdb_bin),
                "-listen-addr",
                f"{HOST}:{self.port}",
                "-postgresql-url",
                self.postgresql_url,
                "-log-level",
                self.log_level,
            ],
            log_file=self.data_dir / "ferretdb.log",
            pid_file=self.data_dir / "ferretdb.pid",
            cwd=self.data_dir,
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._proc.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        proc = self._proc
        if proc is None:
            raise ServerStartError("ferretdb not started")

        def ping() -> bool:
            client: MongoClient[dict[str, Any]] = MongoClient(
                self.url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
            )
            try:
                client.admin.command("ping")
                # a real round trip through PostgreSQL, not just the listener
                client[FERRET_DB]["_devinfra_probe"].find_one()
                return True
            finally:
                client.close()

        wait_until("ferretdb port", lambda: tcp_connectable(self.port), timeout=timeout, proc=proc)
        wait_until("ferretdb ping", ping, timeout=timeout, proc=proc)
