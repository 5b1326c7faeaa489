"""docker-compose.yml cannot run here (no Docker engine), so check what can be checked:
every service it builds exists, and it configures each one only through variables it reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from contracts.topics import TOPICS
from ingestor.settings import Settings as IngestorSettings
from query_api.settings import Settings as QueryApiSettings
from state_machine.settings import Settings as StateMachineSettings
from tiktok_sim.settings import SimSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
BUILT: dict[str, type[BaseSettings]] = {
    "ingestor": IngestorSettings,
    "state_machine": StateMachineSettings,
    "query_api": QueryApiSettings,
    "tiktok_sim": SimSettings,
}


def variables_read_by(settings: type[BaseSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix") or "")
    return {f"{prefix}{name}".upper() for name in settings.model_fields}


def test_every_built_service_has_its_dockerfile_and_module() -> None:
    built = {name for name, spec in SERVICES.items() if "build" in spec}
    assert built == set(BUILT)
    for name in built:
        build = SERVICES[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name


@pytest.mark.parametrize("service", sorted(BUILT))
def test_a_service_is_configured_only_by_variables_it_reads(service: str) -> None:
    given = set(SERVICES[service]["environment"])
    unknown = given - variables_read_by(BUILT[service])
    assert not unknown, f"{service} does not read {sorted(unknown)}"


def test_every_service_depends_on_services_that_exist() -> None:
    for name, spec in SERVICES.items():
        assert set(spec.get("depends_on", {})) <= set(SERVICES), name


def test_the_topic_init_creates_exactly_the_contract_topics() -> None:
    script = "\n".join(SERVICES["kafka-topics"]["command"])
    created = dict(re.findall(r"--topic (\S+) --partitions (\d+)", script))
    assert created == {spec.name: str(spec.partitions) for spec in TOPICS}
