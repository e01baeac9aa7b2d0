"""Configurations whose identifiers are pinned in `tests/data/identifiers.json`
(docs/configurations.md, identity rule 8).

The classes pin their type name with `name=` (one deliberately does not, to pin the
`module.QualName` rule); enums are named after their module. Those named after their module
set `__module__ = MODULE` (`golden_configs`, the name this file had at the top of tests/),
the same whether pytest imports it as `support.golden_configs` or it runs as a script. So
identifiers do not depend on the test layout.

Regenerate the table only together with a new `legato.ENCODING_VERSION` and a migration note
in CHANGELOG.md; a changed identifier otherwise means finished jobs are no longer found:

    python tests/support/golden_configs.py --write
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import legato
from legato import (
    Config,
    Constant,
    Meta,
    Option,
    Param,
    SubParam,
    Task,
    field,
    pathgenerator,
    tag,
)
from legato._core._identity import current_workdir, main_identifier

TABLE = Path(__file__).parent.parent / "data" / "identifiers.json"
MODULE = "golden_configs"
"""The module name the unpinned classes below carry in their type names."""
# Their annotations are resolved in the module their `__module__` names.
sys.modules.setdefault(MODULE, sys.modules[__name__])
WORKDIR = Path("/golden/workdir")
"""The workdir set while computing the `path_inside_workdir` case."""


class Color(enum.Enum):
    __module__ = MODULE
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    __module__ = MODULE
    LOW = 1
    HIGH = 2


class Scalars(Config, name="golden.Scalars"):
    b: Param[bool] = False
    i: Param[int] = 0
    f: Param[float] = 0.0
    s: Param[str] = ""
    raw: Param[bytes] = b""
    none: Param[None] = None


class Values(Config, name="golden.Values"):
    color: Param[Color] = Color.RED
    level: Param[Level] = Level.LOW
    path: Param[Path | None] = None
    when: Param[dt.datetime | None] = None
    day: Param[dt.date | None] = None


class Containers(Config, name="golden.Containers"):
    xs: Param[list[float]] = field(default=[])
    tup: Param[tuple[int, ...]] = ()
    pair: Param[tuple[int, str]] = (0, "")
    mapping: Param[dict[str, int]] = field(default={})
    words: Param[set[str]] = field(default=set())
    frozen: Param[frozenset[int]] = frozenset()


class Loose(Config, name="golden.Loose"):
    anything: Param[Any] = None
    either: Param[int | float | str | bytes] = 0


class Model(Config, name="golden.Model"):
    hidden: Param[int] = 128
    dropout: Param[float] = 0.1
    device: Meta[str] = "cpu"
    verbose: Option[bool] = False


class Versioned(Config, name="golden.Versioned"):
    x: Param[int] = 0
    version: Constant[int] = 2


class Kept(Config, name="golden.Kept"):
    seed: Param[int] = field(default=0, ignore_default=False)
    layers: Param[list[int]] = field(default_factory=lambda: [1, 2])


class Learn(Task, name="golden.Learn"):
    model: Param[Model]
    epochs: Param[int] = 100
    lr: Param[float] = 1e-3
    checkpoint: Annotated[Path, pathgenerator("model.pt")]


class Train(Task, name="golden.Train"):
    """Sub-parameters: in the identifier, not in the main identifier."""

    model: Param[Model]
    lr: Param[float] = 1e-3
    epochs: SubParam[int] = 100
    schedule: SubParam[tuple[float, ...]] = ()
    checkpoint: Annotated[Path, pathgenerator("model.pt")]


class TrainAsParams(Task, name="golden.Train"):
    """`Train` with its sub-parameters declared `Param`: the same identifiers."""

    model: Param[Model]
    lr: Param[float] = 1e-3
    epochs: Param[int] = 100
    schedule: Param[tuple[float, ...]] = ()


class Ensemble(Config, name="golden.Ensemble"):
    members: Param[list[Model]] = field(default=[])
    by_name: Param[dict[str, Model]] = field(default={})
    best: Param[Model | None] = None


class Twin(Config, name="golden.Scalars"):
    """Pinned to the same name as `Scalars`, with a subset of its fields."""

    i: Param[int] = 0


class Plain(Config):
    """Not pinned: its type name is `golden_configs.Plain`."""

    __module__ = MODULE

    i: Param[int] = 0


class Outer(Config, name="golden.Outer"):
    class Inner(Config):
        """Not pinned: `golden_configs.Outer.Inner`."""

        __module__ = MODULE

        x: Param[int] = 0

    inner: Param[Outer.Inner]


def _inside_workdir() -> Config:
    token = current_workdir.set(WORKDIR)
    try:
        config = Values(path=WORKDIR / "data" / "train.csv")
        config.__identifier__  # computed (and kept) while the workdir is set
    finally:
        current_workdir.reset(token)
    return config


CASES: dict[str, Callable[[], Config]] = {
    "scalars_defaults": lambda: Scalars(),
    "bool_true": lambda: Scalars(b=True),
    "int_positive": lambda: Scalars(i=42),
    "int_negative": lambda: Scalars(i=-7),
    "int_u64_max": lambda: Scalars(i=2**64 - 1),
    "int_beyond_u64": lambda: Scalars(i=2**64),
    "int_below_i64": lambda: Scalars(i=-(2**63) - 1),
    "float": lambda: Scalars(f=0.5),
    "float_from_int": lambda: Scalars(f=3),
    "float_negative_zero": lambda: Scalars(f=-0.0),
    "float_nan": lambda: Scalars(f=float("nan")),
    "float_inf": lambda: Scalars(f=float("-inf")),
    "str_unicode": lambda: Scalars(s="héllo ✓ 世界"),
    "bytes": lambda: Scalars(raw=b"\x00\xffabc"),
    "enum": lambda: Values(color=Color.GREEN),
    "int_enum": lambda: Values(level=Level.HIGH),
    "path_relative": lambda: Values(path=Path("data/train.csv")),
    "path_absolute": lambda: Values(path=Path("/data/train.csv")),
    "path_inside_workdir": _inside_workdir,
    "datetime_naive": lambda: Values(when=dt.datetime(2024, 5, 17, 13, 45, 30, 123456)),
    "datetime_utc": lambda: Values(when=dt.datetime(2024, 5, 17, 13, 45, tzinfo=dt.timezone.utc)),
    "date": lambda: Values(day=dt.date(2024, 5, 17)),
    "list": lambda: Containers(xs=[0.1, 0.2, 3]),
    "tuple_variadic": lambda: Containers(tup=(3, 1, 2)),
    "tuple_fixed": lambda: Containers(pair=(1, "one")),
    "dict": lambda: Containers(mapping={"b": 2, "a": 1, "c": 3}),
    "set_of_str": lambda: Containers(words={"delta", "alpha", "charlie", "bravo"}),
    "frozenset": lambda: Containers(frozen=frozenset({5, 3, 8})),
    "any_int": lambda: Loose(anything=1),
    "any_float": lambda: Loose(anything=1.0),
    "any_bool": lambda: Loose(anything=True),
    "any_nested": lambda: Loose(anything={"k": [1, (2.0, None)], "s": {"x", "y"}}),
    "union_str": lambda: Loose(either="1"),
    "union_bytes": lambda: Loose(either=b"1"),
    "union_float": lambda: Loose(either=1.0),
    "meta_excluded": lambda: Model(device="cuda:0", verbose=True),
    "model": lambda: Model(hidden=256, dropout=0.5),
    "constant": lambda: Versioned(x=1),
    "ignore_default_false": lambda: Kept(),
    "default_factory": lambda: Kept(seed=1, layers=[3]),
    "task_nested": lambda: Learn(model=Model(hidden=64), epochs=10),
    "task_tagged": lambda: Learn(model=Model(hidden=tag(64)), epochs=tag(10)),
    "ensemble": lambda: Ensemble(
        members=[Model(hidden=1), Model(hidden=2)],
        by_name={"big": Model(hidden=512), "small": Model(hidden=8)},
        best=Model(hidden=2),
    ),
    "pinned_twin": lambda: Twin(i=42),
    "unpinned": lambda: Plain(i=1),
    "inner_class": lambda: Outer(inner=Outer.Inner(x=1)),
    "subparam_default": lambda: Train(model=Model(hidden=64)),
    "subparam_set": lambda: Train(model=Model(hidden=64), epochs=10),
    "subparam_two": lambda: Train(model=Model(hidden=64), epochs=50, schedule=(0.5, 0.25)),
    "subparam_as_param": lambda: TrainAsParams(model=Model(hidden=64), epochs=10),
    "subparam_other_main": lambda: Train(model=Model(hidden=64), lr=0.1, epochs=10),
}

MAIN_CASES = ("subparam_default", "subparam_set", "subparam_two", "subparam_other_main")
"""Cases whose main identifier (sub-parameters left out) is pinned too."""


def identifiers() -> dict[str, str]:
    """The identifier of every case, computed in this process."""
    return {label: make().__identifier__ for label, make in CASES.items()}


def main_identifiers() -> dict[str, str]:
    """The main identifier of every case of `MAIN_CASES`, computed in this process."""
    return {label: main_identifier(CASES[label]()) for label in MAIN_CASES}


def write_table() -> None:
    table = {
        "_note": (
            "Pinned identifiers (docs/configurations.md, identity rule 8). Never edit by hand; "
            "regenerate with "
            "`python tests/support/golden_configs.py --write` only together with a new "
            "legato.ENCODING_VERSION and a migration note in CHANGELOG.md."
        ),
        "encoding_version": legato.ENCODING_VERSION,
        "identifiers": identifiers(),
        "main_identifiers": main_identifiers(),
    }
    TABLE.parent.mkdir(exist_ok=True)
    TABLE.write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_table()
        print(f"wrote {len(CASES)} identifiers to {TABLE}")
    else:  # used by test_hashseed.py: print the identifiers for comparison
        print(json.dumps(identifiers(), sort_keys=True))
