"""Local Kafka (KRaft), PostgreSQL and FerretDB servers as managed subprocesses."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devinfra.install import InstalledPaths, install
from devinfra.proc import ManagedProcess, ServerStartError, pick_port, tcp_connectable, wait_until

log = logging.getLogger("devinfra")

HOST = "127.0.0.1"
PG_USER = "postgres"
FERRET_DB = "ferretdb"

_LOG4J2_PROPERTIES = """\
status = warn
name = devinfra-kafka

appender.console.type = Console
appender.console.name = STDOUT
appender.console.target = SYSTEM_OUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = warn

appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3

rootLogger.level = info
rootLogger.appenderRef.console.ref = STDOUT
rootLogger.appenderRef.file.ref = FILE

logger.kafka.name = kafka
logger.kafka.level = info
logger.apache.name = org.apache.kafka
logger.apache.level = info
logger.state.name = state.change.logger
logger.state.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
"""


def _run_checked(argv: list[str], *, user: str | None = None, cwd: Path | None = None) -> str:
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


def _run_async_probe(coro_factory: Any) -> Any:
    """Run an async probe on a private event loop in a worker thread.

    Safe to call from sync code that itself runs inside an event loop thread.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro_factory()).result()


# --------------------------------------------------------------------------- common


class _Server:
    """A server run as one managed process: start it, wait until it answers, stop it."""

    start_timeout = 60.0
    stop_timeout = 30.0
    _proc: ManagedProcess | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.running

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


# --------------------------------------------------------------------------- Kafka


class KafkaServer(_Server):
    """Single-node KRaft Kafka (broker + controller) on ``127.0.0.1:port``."""

    start_timeout = 90.0

    def __init__(
        self,
        data_dir: Path,
        paths: InstalledPaths,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "512m",
    ) -> None:
        self.data_dir = data_dir
        self.paths = paths
        self.port = pick_port(port)
        self.config_file = data_dir / "server.properties"
        if controller_port is None:  # keep the previous controller port of this data dir
            controller_port = self._previous_controller_port()
        self.controller_port = pick_port(controller_port, exclude=[self.port])
        self.heap = heap
        self.logs_dir = data_dir / "logs"
        self.log_dirs = data_dir / "data"
        self.log4j_file = data_dir / "log4j2.properties"
        self._proc: ManagedProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def _previous_controller_port(self) -> int | None:
        try:
            for line in self.config_file.read_text().splitlines():
                if line.startswith("controller.quorum.voters="):
                    return int(line.rsplit(":", 1)[1])
        except (OSError, ValueError, IndexError):
            pass
        return None

    def _write_config(self) -> None:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            # after a crash (SIGKILL) the restarted node waits for its own previous broker
            # session to expire before unfencing; the 9 s default makes restarts slow
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "4000",
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        self.log4j_file.write_text(_LOG4J2_PROPERTIES)

    def _java_argv(self, main_class: str, *args: str, heap: str | None = None) -> list[str]:
        java = shutil.which("java")
        if java_home := os.environ.get("JAVA_HOME"):
            java = str(Path(java_home) / "bin" / "java")
        if java is None:
            raise ServerStartError("java not found")
        argv = [java]
        if heap:
            argv += [f"-Xmx{heap}", f"-Xms{heap}"]
        return [
            *argv,
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.logs_dir}",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            "-cp",
            self.paths.kafka_classpath,
            main_class,
            *args,
        ]

    def _format_storage(self) -> None:
        if (self.log_dirs / "meta.properties").is_file():
            return
        cluster_id_file = self.data_dir / "cluster.id"
        if cluster_id_file.is_file():
            cluster_id = cluster_id_file.read_text().strip()
        else:
            # Kafka cluster ids are 16 random bytes, url-safe base64 without padding
            import base64

            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            cluster_id_file.write_text(cluster_id)
        _run_checked(
            self._java_argv(
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                "-t",
                cluster_id,
                "-c",
                str(self.config_file),
            )
        )

    def start_process(self) -> None:
        """Launch (formatting storage first if needed) without waiting for readiness."""
        if self.running:
            return
        self._write_config()
        self._format_storage()
        self._proc = ManagedProcess(
            "kafka",
            self._java_argv("kafka.Kafka", str(self.config_file), heap=self.heap),
            log_file=self.logs_dir / "stdout.log",
            cwd=self.data_dir,
        )
        self._proc.start()

    def wait_ready(self, timeout: float = 90.0) -> None:
        proc = self._proc
        if proc is None:
            raise ServerStartError("kafka not started")
        wait_until("kafka port", lambda: tcp_connectable(self.port), timeout=timeout, proc=proc)
        wait_until(
            "kafka metadata", lambda: _run_async_probe(self._probe), timeout=timeout, proc=proc
        )

    async def _probe(self) -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            await admin.list_topics()
            cluster = await admin.describe_cluster()
            return bool(cluster.get("brokers"))
        finally:
            await admin.close()



# --------------------------------------------------------------------------- PostgreSQL


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


class PostgresServer(_Server):
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
        # FerretDB's own default pool is 50 connections, and it holds one per update statement
        # until the command ends (see state_machine.repository): give it headroom.
        return f"postgres://{PG_USER}@{HOST}:{self.port}/{FERRET_DB}?pool_max_conns=150"

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
        _run_checked(
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
            "max_connections": "200",
            "shared_buffers": "128MB",
            "logging_collector": "off",
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
        exists = _run_checked(
            [
                self._bin("psql"),
                "-h", HOST, "-p", str(self.port), "-U", PG_USER, "-d", "postgres", "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{FERRET_DB}'",
            ]
        )  # fmt: skip
        if exists.strip() != "1":
            _run_checked(
                [self._bin("createdb"), "-h", HOST, "-p", str(self.port), "-U", PG_USER, FERRET_DB]
            )



# --------------------------------------------------------------------------- FerretDB


class FerretDBServer(_Server):
    """FerretDB (embedded v1, PostgreSQL backend) speaking the MongoDB wire protocol."""

    stop_timeout = 15.0

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
            cwd=self.data_dir,
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._proc.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        proc = self._proc
        if proc is None:
            raise ServerStartError("ferretdb not started")

        def ping() -> bool:
            from pymongo import MongoClient

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



# --------------------------------------------------------------------------- all together


@dataclass(frozen=True)
class InfraEndpoints:
    kafka_bootstrap: str  # "127.0.0.1:port"
    mongodb_url: str  # "mongodb://127.0.0.1:port/"
    postgresql_url: str  # backend of FerretDB, for debugging


class Infra:
    """Kafka + PostgreSQL + FerretDB under one data dir.

    ``start()`` launches Kafka and PostgreSQL→FerretDB concurrently. The outage helpers
    (``stop_kafka``/``start_kafka``, ``stop_mongo``/``start_mongo``) restart a server on
    the same port and data dir. All methods are blocking; from async code call them via
    ``await asyncio.to_thread(infra.stop_kafka)``.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        kafka_port: int | None = None,
        mongo_port: int | None = None,
        postgres_port: int | None = None,
        durable: bool = True,
        paths: InstalledPaths | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.paths = paths or install()
        self.kafka = KafkaServer(self.data_dir / "kafka", self.paths, port=kafka_port)
        self.postgres = PostgresServer(
            self.data_dir / "postgres", self.paths, port=postgres_port, durable=durable
        )
        self.ferretdb = FerretDBServer(
            self.data_dir / "ferretdb",
            self.paths,
            postgresql_url=self.postgres.url,
            port=mongo_port,
        )

    @property
    def endpoints(self) -> InfraEndpoints:
        return InfraEndpoints(
            kafka_bootstrap=self.kafka.bootstrap,
            mongodb_url=self.ferretdb.url,
            postgresql_url=self.postgres.url,
        )

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap

    @property
    def mongodb_url(self) -> str:
        return self.ferretdb.url

    def start(self) -> InfraEndpoints:
        t0 = time.monotonic()
        try:
            self.kafka.start_process()  # JVM boot overlaps with postgres + ferretdb
            self.postgres.start()
            self.ferretdb.start()
            self.kafka.wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("infra up in %.1fs: %s", time.monotonic() - t0, self.endpoints)
        return self.endpoints

    def stop(self) -> None:
        """Stop everything (best effort, never raises for a single server)."""
        for stop in (self.ferretdb.stop, self.kafka.stop, self.postgres.stop):
            try:
                stop()
            except Exception:
                log.exception("error while stopping")

    # outage simulation -----------------------------------------------------------------

    def stop_kafka(self, *, kill: bool = False) -> None:
        self.kafka.stop(kill=kill)

    def start_kafka(self) -> None:
        self.kafka.start()

    def stop_mongo(self, *, kill: bool = False) -> None:
        self.ferretdb.stop(kill=kill)

    def start_mongo(self) -> None:
        self.ferretdb.start()

    def stop_postgres(self, *, kill: bool = False) -> None:
        self.postgres.stop(kill=kill)

    def start_postgres(self) -> None:
        self.postgres.start()

    def __enter__(self) -> Infra:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_infra(
    data_dir: Path,
    *,
    kafka_port: int | None = None,
    mongo_port: int | None = None,
    durable: bool = True,
) -> Iterator[Infra]:
    """Start all three servers, yield the :class:`Infra` (has ``.kafka_bootstrap`` and
    ``.mongodb_url`` plus outage helpers), stop everything on exit or error."""
    infra = Infra(data_dir, kafka_port=kafka_port, mongo_port=mongo_port, durable=durable)
    infra.start()
    try:
        yield infra
    finally:
        infra.stop()
