"""Local development infrastructure: Kafka (KRaft), PostgreSQL 15 and FerretDB.

from devinfra import running_infra
with running_infra(Path(".data"), kafka_port=None, mongo_port=None, durable=False) as infra:
    infra.kafka_bootstrap, infra.mongodb_url
"""

from devinfra.ferretdb import FerretDBServer
from devinfra.infra import Infra, InfraEndpoints, running_infra
from devinfra.install import InstalledPaths, InstallError, cache_dir, install
from devinfra.kafka import KafkaServer
from devinfra.postgres import PostgresServer
from devinfra.proc import ServerStartError

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
