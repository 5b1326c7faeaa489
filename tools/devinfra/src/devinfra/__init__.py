"""Local development infrastructure: Kafka (KRaft), PostgreSQL 15 and FerretDB.

from devinfra import running_infra
with running_infra(Path(".data"), kafka_port=None, mongo_port=None, durable=False) as infra:
    infra.kafka_bootstrap, infra.mongodb_url
"""

from devinfra.install import InstalledPaths, InstallError, cache_dir, install
from devinfra.proc import ServerStartError
from devinfra.servers import (
    FerretDBServer,
    Infra,
    InfraEndpoints,
    KafkaServer,
    PostgresServer,
    running_infra,
)

__all__ = [
    "FerretDBServer",
    "Infra",
    "InfraEndpoints",
    "InstallError",
    "InstalledPaths",
    "KafkaServer",
    "PostgresServer",
    "ServerStartError",
    "cache_dir",
    "install",
    "running_infra",
]
