"""`python -m ingestor.sync_cli --shop-id X [--since TS] [--until TS]`: ask for a Sync Return.

Publishes a `SyncCommand` (key = shop id) to the sync-commands topic of KAFKA_BOOTSTRAP_SERVERS,
waits until the broker acknowledged it, and prints the command id. The ingestor records the
job in `sync_jobs` under that id (`GET /api/v1/sync/{command_id}` on the query API shows it).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from faststream.kafka import KafkaBroker

from contracts.messages import SyncCommand
from contracts.topics import SYNC_COMMANDS_TOPIC
from runtime.topology import ensure_topics

app = typer.Typer(add_completion=False, help=__doc__)


async def publish_command(bootstrap_servers: str, command: SyncCommand,
                          timeout_s: float = 15.0) -> None:
    broker = KafkaBroker(bootstrap_servers, client_id="ingestor-sync-cli", acks="all",
                         enable_idempotence=True)
    async with asyncio.timeout(timeout_s):
        await ensure_topics(bootstrap_servers)
        await broker.start()
        try:
            await broker.publish(command, SYNC_COMMANDS_TOPIC,
                                 key=command.shop_id.encode("utf-8"))
        finally:
            await broker.stop()


@app.command()
def sync(
    shop_id: Annotated[str, typer.Option("--shop-id", help="the shop to sync")],
    since: Annotated[int | None, typer.Option(
        help="update time from (unix s); default: the shop's checkpoint minus the overlap")
    ] = None,
    until: Annotated[int | None, typer.Option(
        help="update time to (unix s); default: now, when the sync starts")] = None,
    bootstrap_servers: Annotated[str, typer.Option(
        "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS")] = "127.0.0.1:9092",
    requested_by: Annotated[str, typer.Option(help="recorded on the job")] = "cli",
) -> None:
    """Publish one sync command and print its id."""
    if since is not None and until is not None and since > until:
        raise typer.BadParameter("--since must not be after --until")
    try:
        command = SyncCommand(shop_id=shop_id, since=since, until=until,
                              requested_by=requested_by)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        asyncio.run(publish_command(bootstrap_servers, command))
    except Exception as exc:  # unreachable Kafka, timeout
        typer.echo(f"could not publish the sync command to {bootstrap_servers}: {exc!r}",
                   err=True)
        raise typer.Exit(1) from exc
    typer.echo(str(command.command_id))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
