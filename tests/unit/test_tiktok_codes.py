"""`contracts`' TikTok code tables against the simulator's, which are typed in separately.

The ingestor maps TikTok's codes with `contracts.statuses`; the simulator renders them with
`tiktok_sim.codes`. Were one derived from the other, a wrong code would pass every test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import tiktok_sim
from contracts import statuses as contracts
from tiktok_sim import codes as sim

Canonical = contracts.ReturnStatus | contracts.ReverseType
Pairs = frozenset[tuple[int | str, Canonical]]


def _pairs(table: Iterable[tuple[Canonical, int | str | tuple[str, ...]]]) -> Pairs:
    """(TikTok code, canonical) pairs of a simulator table's items (canonical -> code(s))."""
    return frozenset(
        (code, canonical)
        for canonical, codes in table
        for code in (codes if isinstance(codes, tuple) else (codes,))
    )


# (what the table is, contracts' table: TikTok code -> canonical, the simulator's pairs)
TABLES: tuple[tuple[str, Mapping[int, Canonical] | Mapping[str, Canonical], Pairs], ...] = (
    ("legacy status code", contracts.LEGACY_STATUS_CODES,
     _pairs(sim.LEGACY_CODE_OF_STATUS.items())),
    ("202309 return_status", contracts.V202309_STATUS_NAMES,
     _pairs(sim.V202309_NAMES_OF_STATUS.items())),
    ("legacy reverse_type", contracts.LEGACY_REVERSE_TYPE_CODES,
     _pairs(sim.LEGACY_TYPE_CODE_OF.items())),
    ("legacy reverse_event_type", contracts.LEGACY_REVERSE_EVENT_TYPES,
     _pairs(sim.LEGACY_EVENT_TYPE_OF.items())),
    ("202309 return_type", contracts.V202309_RETURN_TYPES,
     _pairs(sim.V202309_TYPE_NAME_OF.items())),
)
IDS = [name for name, _, _ in TABLES]


@pytest.mark.parametrize(("name", "mapped", "spoken"), TABLES, ids=IDS)
def test_every_code_contracts_maps_is_what_tiktok_sends_for_that_status_or_type(
    name: str, mapped: Mapping[int | str, Canonical], spoken: Pairs
) -> None:
    wrong = {code: canonical for code, canonical in mapped.items()
             if (code, canonical) not in spoken}
    assert not wrong, (f"contracts maps {name} values the simulator (DOMAIN.md) does not send for "
                       f"that status/type: {wrong}")


@pytest.mark.parametrize(("name", "mapped", "spoken"), TABLES, ids=IDS)
def test_every_code_tiktok_sends_is_mapped_by_contracts_to_the_same_status_or_type(
    name: str, mapped: Mapping[int | str, Canonical], spoken: Pairs
) -> None:
    wrong = {code: (canonical, mapped.get(code)) for code, canonical in spoken
             if mapped.get(code) != canonical}
    assert not wrong, (f"{name} values the simulator sends that contracts maps elsewhere or not "
                       f"at all (code: (sent for, contracts' mapping)): {wrong}")


def test_the_simulator_takes_no_code_table_from_contracts() -> None:
    tables = ("LEGACY_STATUS_CODES", "V202309_STATUS_NAMES", "LEGACY_REVERSE_TYPE_CODES",
              "LEGACY_REVERSE_EVENT_TYPES", "V202309_RETURN_TYPES")
    package = Path(tiktok_sim.__file__).parent
    borrowed = {f"{path.name}: {table}" for path in package.glob("*.py")
                for table in tables if table in path.read_text()}
    assert not borrowed, f"the simulator must type TikTok's codes in itself: {borrowed}"
