"""`python -m state_machine`: consume the events topic until stopped.

A consumer the watchdog finds stalled is replaced by a fresh one in the same process."""

import asyncio
import sys

from state_machine.app import create_app
from state_machine.repository import ReadModelOutdated
from state_machine.settings import Settings


def main() -> None:
    settings = Settings()
    while True:
        app, watchdog = create_app(settings)
        try:
            asyncio.run(app.run())
        except ReadModelOutdated as exc:
            sys.exit(f"state_machine: {exc}")
        if not watchdog.stalled:
            break


if __name__ == "__main__":
    main()
