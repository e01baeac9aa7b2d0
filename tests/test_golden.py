"""The golden table: identifiers never change within an encoding version
(docs/configurations.md, identity rule 8).

A failure here means finished jobs would no longer be found. If the change is deliberate,
bump `legato.ENCODING_VERSION`, run `python tests/support/golden_configs.py --write` and add a
migration note to CHANGELOG.md.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

import legato
from legato._core._identity import main_identifier
from support.golden_configs import CASES, MAIN_CASES, TABLE, identifiers

HOW_TO_UPDATE = (
    "identifiers changed: bump legato.ENCODING_VERSION, run "
    "`python tests/support/golden_configs.py --write` and write a migration note"
)


@pytest.fixture(scope="module")
def table() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(TABLE.read_text())
    return data


def test_table_matches_encoding_version(table: dict[str, Any]) -> None:
    assert table["encoding_version"] == legato.ENCODING_VERSION, HOW_TO_UPDATE


def test_table_covers_every_case(table: dict[str, Any]) -> None:
    assert set(table["identifiers"]) == set(CASES)
    assert len(CASES) >= 30


@pytest.mark.parametrize("label", sorted(CASES))
def test_identifier_is_pinned(label: str, table: dict[str, Any]) -> None:
    assert CASES[label]().__identifier__ == table["identifiers"][label], HOW_TO_UPDATE


def test_identifiers_are_sha256_hex(table: dict[str, Any]) -> None:
    for ident in table["identifiers"].values():
        assert re.fullmatch(r"[0-9a-f]{64}", ident)


def test_only_the_expected_cases_coincide() -> None:
    """Cases that are the same configuration by an identity rule of docs/configurations.md,
    and no others."""
    ids = identifiers()
    same = [
        ("path_relative", "path_inside_workdir"),  # rule 6: relative to the workdir
        ("int_positive", "pinned_twin"),  # rule 5: the same name= and identity fields
        ("task_nested", "task_tagged"),  # rule 4: tags are not identity
        ("scalars_defaults", "float_negative_zero"),  # rules 3 and 6: -0.0 is the default 0.0
        ("subparam_set", "subparam_as_param"),  # a SubParam counts as a Param does
    ]
    for a, b in same:
        assert ids[a] == ids[b], (a, b)
    merged = {b for _, b in same}
    distinct = [ident for label, ident in ids.items() if label not in merged]
    assert len(set(distinct)) == len(distinct)


def test_table_covers_every_main_case(table: dict[str, Any]) -> None:
    assert set(table["main_identifiers"]) == set(MAIN_CASES)


@pytest.mark.parametrize("label", MAIN_CASES)
def test_main_identifier_is_pinned(label: str, table: dict[str, Any]) -> None:
    assert main_identifier(CASES[label]()) == table["main_identifiers"][label], HOW_TO_UPDATE


def test_main_identifier_leaves_sub_parameters_out(table: dict[str, Any]) -> None:
    mains = table["main_identifiers"]
    ids = table["identifiers"]
    # Only sub-parameters differ: one main identifier, that of the defaults (rule 3).
    assert mains["subparam_set"] == mains["subparam_two"] == mains["subparam_default"]
    assert mains["subparam_default"] == ids["subparam_default"]
    assert len({ids["subparam_default"], ids["subparam_set"], ids["subparam_two"]}) == 3
    # A Param differs: another main identifier.
    assert mains["subparam_other_main"] != mains["subparam_set"]


@pytest.mark.parametrize("label", sorted(set(CASES) - set(MAIN_CASES) - {"subparam_as_param"}))
def test_main_identifier_without_sub_parameters_is_the_identifier(label: str) -> None:
    config = CASES[label]()
    assert main_identifier(config) == config.__identifier__
