"""Starting a service: its settings from the environment, or one clear line and exit status 2.

Shared by the services so that each refuses a missing or invalid variable alike: naming the
variable, never its value, never with a traceback (fail closed).
"""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def _variable(loc: tuple[int | str, ...]) -> str:
    return str(loc[0]).upper() if loc else "configuration"


def refusal(exc: ValidationError) -> str:
    """What is wrong with the environment, on one line, naming variables but no value."""
    problems: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        name = _variable(error["loc"])
        if error["type"] == "missing":
            problems.setdefault(name, f"{name} is not set")
        elif error["type"] in ("too_short", "string_too_short"):
            problems.setdefault(name, f"{name} is empty")
        else:
            problems.setdefault(name, f"{name} is invalid ({error['msg']})")
    return "; ".join(problems.values())


def load_or_exit(settings: type[SettingsT], service: str) -> SettingsT:
    """`settings()` from the environment, or `<service>: <what is wrong>; refusing to start`
    on stderr and exit status 2."""
    try:
        return settings()
    except ValidationError as exc:
        reason = refusal(exc)
    except ValueError as exc:  # pydantic-settings: a variable that is not valid JSON
        reason = str(exc)
    print(f"{service}: {reason}; refusing to start", file=sys.stderr)
    raise SystemExit(2)
