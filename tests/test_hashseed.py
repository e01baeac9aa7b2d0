"""Identifiers do not depend on `PYTHONHASHSEED` (docs/configurations.md, identity rule 1):
fresh interpreters agree.

String hashing, and so the iteration order of sets and dicts of strings, changes with the seed;
the canonical encoding must not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.golden_configs import identifiers

TESTS = Path(__file__).parent
SEEDS = ["0", "1", "42", "4294967295"]

STRINGS_SCRIPT = """
import json
from typing import Any
from legato import Config, Param, field

class Strings(Config, name="hashseed.Strings"):
    words: Param[set[str]] = field(default_factory=set)
    frozen: Param[frozenset[str]] = frozenset()
    counts: Param[dict[str, int]] = field(default_factory=dict)
    nested: Param[dict[str, set[str]]] = field(default_factory=dict)
    anything: Param[Any] = None

words = [f"word-{i}-{'x' * (i % 7)}" for i in range(300)]
configs = {
    "set": Strings(words=set(words)),
    "frozenset": Strings(frozen=frozenset(words)),
    "dict": Strings(counts={w: i for i, w in enumerate(words)}),
    "dict_of_sets": Strings(nested={w: set(words[:i % 20]) for i, w in enumerate(words[:50])}),
    "any_set": Strings(anything=set(words)),
    "any_dict": Strings(anything={w: [w, {w}] for w in words}),
}
out = {label: c.__identifier__ for label, c in configs.items()}
out["_set_order"] = list(set(words))[:20]  # shows that the seed does change iteration order
print(json.dumps(out))
"""


def run(args: list[str], seed: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env.pop("LEGATO_WORKDIR", None)
    proc = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, check=False, cwd=TESTS
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.fixture(scope="module")
def string_runs() -> dict[str, dict[str, Any]]:
    return {seed: run(["-c", STRINGS_SCRIPT], seed) for seed in SEEDS}


def test_golden_identifiers_agree_across_seeds_and_with_this_process() -> None:
    here = identifiers()
    for seed in SEEDS[:2]:
        script = TESTS / "support" / "golden_configs.py"
        assert run([str(script)], seed) == here, f"PYTHONHASHSEED={seed}"


def test_seeds_do_change_set_iteration_order(string_runs: dict[str, dict[str, Any]]) -> None:
    orders = {tuple(result["_set_order"]) for result in string_runs.values()}
    assert len(orders) > 1  # otherwise the next test would prove nothing


def test_sets_and_dicts_of_strings_agree_across_seeds(
    string_runs: dict[str, dict[str, Any]],
) -> None:
    results = [
        {k: v for k, v in out.items() if not k.startswith("_")} for out in string_runs.values()
    ]
    assert all(result == results[0] for result in results)
    assert len(set(results[0].values())) == len(results[0])
