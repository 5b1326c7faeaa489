"""docker-compose.yml cannot run here (no Docker engine), so check what can be checked:
every service it builds exists, it configures each one only through variables it reads, every
setting a service requires comes from the caller's environment, and no secret has a default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
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


# Secrets (and the app key that goes with the secret): never written in the file, never a
# default; a SecretStr setting must be listed here (checked below), so a new one is not missed.
SECRETS = {
    "TIKTOK_APP_KEY", "TIKTOK_APP_SECRET", "TIKTOK_ACCESS_TOKEN", "QUERY_API_TOKENS",
    "SIM_APP_KEY", "SIM_APP_SECRET", "SIM_ACCESS_TOKEN", "INTERNAL_API_TOKEN",
    "DEADLINE_WEBHOOK_SECRET", "SHOP_TOKEN_KEYS", "OAUTH_STATE_SECRET",
}
FROM_CALLER = re.compile(r"^\$\{(\w+):\?[^}]+\}$")  # ${VAR:?message}: compose refuses if unset
NO_DEFAULT = re.compile(r"^\$\{(\w+)(:\?[^}]+|:-)?\}$")  # ${VAR:?...}, ${VAR} or ${VAR:-}


def variable(settings: type[BaseSettings], field: str) -> str:
    return f"{settings.model_config.get('env_prefix') or ''}{field}".upper()


def variables_read_by(settings: type[BaseSettings]) -> set[str]:
    return {variable(settings, name) for name in settings.model_fields}


def environment(service: str) -> dict[str, str]:
    return {name: str(value) for name, value in SERVICES[service]["environment"].items()}


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


@pytest.mark.parametrize("service", sorted(BUILT))
def test_every_required_setting_comes_from_the_callers_environment(service: str) -> None:
    settings = BUILT[service]
    required = {variable(settings, name) for name, f in settings.model_fields.items()
                if f.is_required()}
    given = environment(service)
    for name in required:
        assert FROM_CALLER.match(given.get(name, "")), f"{service}: {name} must be ${{...:?...}}"


@pytest.mark.parametrize("service", sorted(BUILT))
def test_no_secret_is_written_in_compose_or_has_a_default(service: str) -> None:
    for name, value in environment(service).items():
        if name in SECRETS:
            assert NO_DEFAULT.match(value), f"{service}: {name} = {value!r} has a default"


def test_every_secret_setting_is_known_as_a_secret() -> None:
    for settings in BUILT.values():
        for name, f in settings.model_fields.items():
            if SecretStr in (f.annotation, *getattr(f.annotation, "__args__", ())):
                assert variable(settings, name) in SECRETS, name


def test_the_ingestor_and_query_api_require_their_secrets() -> None:
    def required(settings: type[BaseSettings]) -> set[str]:
        return {variable(settings, n) for n, f in settings.model_fields.items() if f.is_required()}

    assert required(IngestorSettings) == {"TIKTOK_APP_KEY", "TIKTOK_APP_SECRET",
                                          "SHOP_TOKEN_KEYS", "OAUTH_STATE_SECRET"}
    assert required(QueryApiSettings) == {"QUERY_API_TOKENS", "OAUTH_STATE_SECRET"}


WORKSPACE_FOLDERS = {"returns-contracts": "contracts", "returns-runtime": "runtime"}


@pytest.mark.parametrize("service", ["ingestor", "query_api", "state_machine"])
def test_each_image_copies_and_installs_every_workspace_package_its_service_needs(
    service: str,
) -> None:
    pyproject = (ROOT / "services" / service / "pyproject.toml").read_text()
    needed = [folder for name, folder in WORKSPACE_FOLDERS.items() if f'"{name}"' in pyproject]
    dockerfile = (ROOT / "services" / service / "Dockerfile").read_text()
    for folder in needed:
        assert f"COPY {folder}/ /src/{folder}/" in dockerfile, folder
        assert f" /src/{folder} " in dockerfile.split("pip install", 1)[1].split("\n", 1)[0], folder
