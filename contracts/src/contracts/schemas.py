"""Export the messages' JSON Schemas into contracts/schemas/ (`python -m contracts.schemas`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from contracts.decisions import DecisionCommand
from contracts.messages import MESSAGES

EXPORTED: tuple[type[BaseModel], ...] = (*MESSAGES, DecisionCommand)

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def rendered() -> dict[str, str]:
    return {
        f"{model.__name__}.json": json.dumps(model.model_json_schema(mode="serialization"),
                                             indent=2, sort_keys=True) + "\n"
        for model in EXPORTED
    }


def main() -> int:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (SCHEMA_DIR / name).write_text(text)
        print(f"wrote {SCHEMA_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
