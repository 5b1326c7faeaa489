"""PostgreSQL 15 from Debian, as the backend of FerretDB."""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from devinfra import ferretdb_indexes
from devinfra.install import InstalledPaths
from devinfra.proc import ManagedProcess, ServerStartError, pick_port, wait_until
from devinfra.server import HOST, Server, run_checked

log = logging.getLogger("devinfra")

PG_USER = "postgres"
FERRET_DB = "ferretdb"
# FerretDB's pool of connections to PostgreSQL (its own default is 50). It holds one for every
# update statement of a command until the command ends, so the clients' update commands under
# way at once must need fewer statements than this, or it deadlocks (state_machine.mongo): room
# for two state machines (a rebalance, a replay beside the live one) and the other services.
# PostgreSQL starts a backend per connection only when FerretDB opens it.
FERRETDB_POOL_CONNECTIONS = 300


def _postgres_can_reach(path: Path) -> bool:
    """Whether the ``postgres`` user can traverse all directories leading to ``path``."""
    try:
        pw = pwd.getpwnam(PG_USER)
    except KeyError:
        return False
    for parent in [*reversed(path.parents)]:
        try:
            st = parent.stat()
        except FileNotFoundError:
            return True  # will be created by us
        if st.st_uid == pw.pw_uid:
            if not st.st_mode & 0o100:
                return False
        elif st.st_gid == pw.pw_gid:
            if not st.st_mode & 0o010:
                return False
        elif not st.st_mode & 0o001:
            return False
    return True


class PostgresServer(Server):
    """PostgreSQL cluster in ``data_dir`` on ``127.0.0.1:port``, unix socket in ``data_dir``.

    As root, initdb/postgres run as the ``postgres`` OS user (they refuse root). If that
    user cannot reach ``data_dir`` (e.g. pytest's 0700 tmp root) the cluster is placed in
    ``/var/tmp/devinfra-pg/<hash>`` instead.
    """

    def __init__(
        self, data_dir: Path, paths: InstalledPaths, *, port: int | None = None, durable: bool
    ) -> None:
        self.as_user: str | None = PG_USER if os.geteuid() == 0 else None
        if self.as_user and not _postgres_can_reach(data_dir):
            digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
            relocated = Path("/var/tmp/devinfra-pg") / digest
            log.info("postgres user cannot reach %s; using %s", data_dir, relocated)
            data_dir = relocated
        self.data_dir = data_dir
        self.pgdata = data_dir / "pgdata"
        self.paths = paths
        self.port = pick_port(port)
        self.durable = durable
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return (f"postgres://{PG_USER}@{HOST}:{self.port}/{FERRET_DB}"
                f"?pool_max_conns={FERRETDB_POOL_CONNECTIONS}")

    def _bin(self, name: str) -> str:
        return str(self.paths.pg_bindir / name)

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.data_dir, self.as_user, self.as_user)
            if self.data_dir.parent == Path("/var/tmp/devinfra-pg"):
                self.data_dir.parent.chmod(0o755)
        if (self.pgdata / "PG_VERSION").is_file():
            return
        run_checked(
            [
                self._bin("initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                PG_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            ],
            user=self.as_user,
            cwd=self.data_dir,
        )

    def start_process(self) -> None:
        if self.running:
            return
        self._initdb()
        settings = {
            "listen_addresses": HOST,
            "unix_socket_directories": str(self.pgdata),
            "max_connections": str(FERRETDB_POOL_CONNECTIONS + 50),  # + devinfra's, psql's
            "shared_buffers": "128MB",
            "logging_collector": "off",
            "plan_cache_mode": ferretdb_indexes.PLAN_CACHE_MODE,
        }
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        argv = [self._bin("postgres"), "-D", str(self.pgdata), "-p", str(self.port)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        self._proc = ManagedProcess(
            "postgres",
            argv,
            log_file=self.data_dir / "postgres.log",
            pid_file=self.data_dir / "postgres.pid",
            cwd=self.data_dir,
            user=self.as_user,
            stop_signal=signal.SIGINT,  # "fast" shutdown; SIGTERM waits for clients
        )
        if self.as_user:  # the log file is opened by us; make it readable for humans either way
            self._proc.log_file.touch()
        self._proc.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        proc = self._proc
        if proc is None:
            raise ServerStartError("postgres not started")

        def ready() -> bool:
            res = subprocess.run(
                [self._bin("pg_isready"), "-q", "-h", HOST, "-p", str(self.port), "-U", PG_USER],
                check=False,
            )
            return res.returncode == 0

        wait_until("postgres", ready, timeout=timeout, proc=proc)
        exists = f"SELECT 1 FROM pg_database WHERE datname = '{FERRET_DB}'"
        if self._psql("postgres", exists) != "1":
            run_checked(
                [self._bin("createdb"), "-h", HOST, "-p", str(self.port), "-U", PG_USER, FERRET_DB]
            )
        self._psql(FERRET_DB, ferretdb_indexes.INSTALL_SQL)
        ferretdb_indexes.check(self._psql(FERRET_DB, ferretdb_indexes.CHECK_SQL))

    def _psql(self, database: str, sql: str) -> str:
        """Run ``sql`` in ``database``; its unaligned, tuples-only output, stripped."""
        return run_checked(
            [
                self._bin("psql"), "-h", HOST, "-p", str(self.port), "-U", PG_USER,
                "-d", database, "-v", "ON_ERROR_STOP=1", "-q", "-tA", "-c", sql,
            ]
        ).strip()  # fmt: skip
