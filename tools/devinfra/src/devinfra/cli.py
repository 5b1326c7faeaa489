"""``python -m devinfra install`` / ``python -m devinfra up``."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from devinfra.infra import Infra
from devinfra.install import InstallError
from devinfra.install import install as do_install
from devinfra.proc import ServerStartError, port_is_free
from devinfra.stack import run as run_stack

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def install(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Install Kafka (Maven), build FerretDB (Go), ensure PostgreSQL 15 (apt). Idempotent."""
    _setup_logging(verbose)
    t0 = time.monotonic()
    paths = do_install()
    typer.echo(f"kafka libs:   {paths.kafka_libs}")
    typer.echo(f"ferretdb bin: {paths.ferretdb_bin}")
    typer.echo(f"postgres bin: {paths.pg_bindir}")
    typer.echo(f"install done in {time.monotonic() - t0:.1f}s")


def _choose(name: str, preferred: int) -> int | None:
    if port_is_free(preferred):
        return preferred
    typer.echo(f"{name} port {preferred} is busy, picking a free one", err=True)
    return None


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option(help="where server data lives")] = Path(".data"),
    kafka_port: Annotated[int, typer.Option(help="Kafka PLAINTEXT port")] = 9092,
    mongo_port: Annotated[int, typer.Option(help="FerretDB (MongoDB wire) port")] = 27017,
    durable: Annotated[bool, typer.Option(help="fsync on (off = faster, unsafe)")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Start Kafka + PostgreSQL + FerretDB and run until Ctrl-C / SIGTERM."""
    _setup_logging(verbose)
    stop_event = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop_event.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    t0 = time.monotonic()
    infra = Infra(
        data_dir,
        kafka_port=_choose("kafka", kafka_port),
        mongo_port=_choose("mongo", mongo_port),
        durable=durable,
    )
    try:
        ep = infra.start()
        typer.echo(f"KAFKA_BOOTSTRAP_SERVERS={ep.kafka_bootstrap}")
        typer.echo(f"MONGODB_URL={ep.mongodb_url}")
        typer.echo(f"# (postgres backend: {ep.postgresql_url})")
        typer.echo(f"# up in {time.monotonic() - t0:.1f}s; Ctrl-C to stop", err=True)
        sys.stdout.flush()
        while not stop_event.wait(1.0):
            if exited := infra.exited():
                typer.echo(f"{', '.join(exited)} died, shutting down", err=True)
                stop_event.set()
    finally:
        typer.echo("stopping...", err=True)
        infra.stop()


@app.command()
def run(
    data_dir: Annotated[
        Path, typer.Option(help="where server data and logs live", envvar="RETURNS_DATA_DIR")
    ] = Path(".data"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Start the infrastructure, the three services and (without a TikTok API) the TikTok
    Shop simulator; print where to look; stop everything on Ctrl-C, SIGTERM, SIGHUP or when
    the parent process dies."""
    _setup_logging(verbose)
    try:
        run_stack(data_dir)
    except (ServerStartError, InstallError) as exc:
        typer.echo(f"devinfra: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    app()
