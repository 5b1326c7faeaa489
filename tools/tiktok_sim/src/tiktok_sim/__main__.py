"""`python -m tiktok_sim [--drive] [--host H] [--port P]`: run the simulator with uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from tiktok_sim.app import create_app
from tiktok_sim.settings import SimSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tiktok_sim", description="TikTok Shop API simulator")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--drive", action="store_true", help="advance returns in the background")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.drive:
        overrides["drive"] = True
    settings = SimSettings().model_copy(update=overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
