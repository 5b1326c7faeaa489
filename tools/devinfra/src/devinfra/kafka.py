"""Single-node Apache Kafka (KRaft, broker + controller) from the Maven-resolved jars."""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from devinfra.install import InstalledPaths
from devinfra.proc import ManagedProcess, ServerStartError, pick_port, tcp_connectable, wait_until
from devinfra.server import HOST, Server, run_async_probe, run_checked

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


class KafkaServer(Server):
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
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            cluster_id_file.write_text(cluster_id)
        run_checked(
            self._java_argv(
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                f"--cluster-id={cluster_id}",  # one argument: an id may begin with "-"
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
            pid_file=self.data_dir / "kafka.pid",
            cwd=self.data_dir,
        )
        self._proc.start()

    def wait_ready(self, timeout: float = 90.0) -> None:
        proc = self._proc
        if proc is None:
            raise ServerStartError("kafka not started")
        wait_until("kafka port", lambda: tcp_connectable(self.port), timeout=timeout, proc=proc)
        wait_until(
            "kafka metadata", lambda: run_async_probe(self._probe), timeout=timeout, proc=proc
        )

    async def _probe(self) -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            await admin.list_topics()
            cluster = await admin.describe_cluster()
            return bool(cluster.get("brokers"))
        finally:
            await admin.close()
