"""Identity (docs/configurations.md, "Identity"): one or more tests per rule, through
`__identifier__` only."""

from __future__ import annotations

import datetime as dt
import enum
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest

from legato import (
    Config,
    Constant,
    Meta,
    Option,
    Param,
    Task,
    dumps,
    experiment,
    field,
    loads,
    pathgenerator,
    tag,
)
from legato._core._identity import current_workdir


def ident(config: Config) -> str:
    return config.__identifier__


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """Make `tmp_path/wd` the workdir Paths are taken relative to, as an experiment does."""
    token = current_workdir.set(tmp_path / "wd")
    try:
        yield tmp_path / "wd"
    finally:
        current_workdir.reset(token)


class Float(Config, name="tests.Float"):
    value: Param[float] = 0.0


class Loose(Config, name="tests.Loose"):
    value: Param[Any] = None
    either: Param[int | float | bool | str | bytes] = 0


class Model(Config, name="tests.Model"):
    hidden: Param[int] = 128
    dropout: Param[float] = 0.1
    device: Meta[str] = "cpu"


class Seq(Config, name="tests.Seq"):
    xs: Param[list[float]] = field(default_factory=list)
    tup: Param[tuple[int, ...]] = ()
    mapping: Param[dict[str, int]] = field(default_factory=dict)
    words: Param[set[str]] = field(default_factory=set)
    frozen: Param[frozenset[str]] = frozenset()


class Where(Config, name="tests.Where"):
    path: Param[Path] = Path()
    when: Param[dt.datetime | None] = None


# --- format and rule 1 --------------------------------------------------------------------


def test_identifier_is_64_lowercase_hex() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", ident(Model()))


def test_equal_identity_fields_give_equal_identifiers() -> None:
    assert ident(Model(hidden=3, dropout=0.5)) == ident(Model(dropout=0.5, hidden=3))
    assert hash(Model(hidden=3)) == hash(Model(hidden=3))


def test_any_identity_field_changes_the_identifier() -> None:
    ids = {ident(Model()), ident(Model(hidden=3)), ident(Model(dropout=0.2))}
    assert len(ids) == 3


# --- rule 2: values are converted to the declared type ------------------------------------


def test_int_given_to_a_float_field_is_the_same_configuration() -> None:
    assert ident(Float(value=1)) == ident(Float(value=1.0))
    assert ident(Seq(xs=[1, 2])) == ident(Seq(xs=[1.0, 2.0]))
    assert ident(Seq(tup=[1, 2])) == ident(Seq(tup=(1, 2)))  # type: ignore[arg-type]
    assert ident(Seq(words=["a", "b"])) == ident(Seq(words={"a", "b"}))  # type: ignore[arg-type]


def test_the_value_type_counts_where_several_are_admitted() -> None:
    assert len({ident(Loose(value=v)) for v in (True, 1, 1.0)}) == 3
    assert len({ident(Loose(either=v)) for v in (True, 1, 1.0)}) == 3
    assert ident(Loose(value="1")) != ident(Loose(value=b"1"))
    assert ident(Loose(either="1")) != ident(Loose(either=b"1"))
    assert ident(Loose(value=[1])) != ident(Loose(value=(1,)))
    assert ident(Loose(value="a")) != ident(Loose(value=Path("a")))


class Color(enum.Enum):
    RED = "red"


class Paint(Config, name="tests.Paint"):
    color: Param[Color] = Color.RED


def test_enum_given_by_value_is_the_member() -> None:
    assert ident(Paint(color="red")) == ident(Paint(color=Color.RED))  # type: ignore[arg-type]


# --- rule 3: defaults are left out --------------------------------------------------------


class Before(Config, name="tests.Evolving"):
    x: Param[int] = 0


class After(Config, name="tests.Evolving"):
    """`Before` with fields added later, each with a default."""

    x: Param[int] = 0
    y: Param[float] = 0.5
    z: Param[tuple[str, ...]] = ("a",)
    model: Param[Model] = Model()
    note: Param[str | None] = None


def test_adding_a_field_with_a_default_keeps_identifiers() -> None:
    assert ident(After()) == ident(Before())
    assert ident(After(x=3)) == ident(Before(x=3))


def test_a_value_equal_to_the_default_is_left_out() -> None:
    same = After(x=3, y=0.5, z=["a"], model=Model(hidden=128), note=None)
    assert ident(same) == ident(Before(x=3))
    assert ident(After(y=1)) != ident(Before())


def test_a_float_default_matches_an_equal_int() -> None:
    assert ident(After(y=0.5)) == ident(Before())

    class NaNDefault(Config, name="tests.Evolving"):
        x: Param[int] = 0
        w: Param[float] = float("nan")

    assert ident(NaNDefault(w=float("nan"))) == ident(Before())


def test_ignore_default_false_keeps_the_field() -> None:
    class Kept(Config, name="tests.Evolving"):
        x: Param[int] = field(default=0, ignore_default=False)

    assert ident(Kept()) != ident(Before())
    assert ident(Kept(x=1)) == ident(Before(x=1))


def test_default_factory_keeps_the_field() -> None:
    class Factory(Config, name="tests.Evolving"):
        x: Param[int] = 0
        items: Param[list[int]] = field(default_factory=list)

    assert ident(Factory()) != ident(Before())
    assert ident(Factory()) == ident(Factory(items=[]))


def test_a_path_default_inside_the_workdir_is_left_out(workdir: Path) -> None:
    token = current_workdir.set(None)
    try:

        class WithPath(Config, name="tests.Evolving"):
            x: Param[int] = 0
            data: Param[Path] = workdir / "data"

        ident(WithPath(x=5))  # compile the class outside any workdir
    finally:
        current_workdir.reset(token)
    assert ident(WithPath()) == ident(Before())
    assert ident(WithPath(data=workdir / "data", x=1)) == ident(Before(x=1))


# --- rule 4: Meta, path generators and tags are not identity ------------------------------


def test_meta_and_option_fields_are_left_out() -> None:
    class Opt(Config, name="tests.Model"):
        hidden: Param[int] = 128
        dropout: Param[float] = 0.1
        verbose: Option[bool] = False

    assert ident(Model(device="cuda")) == ident(Model()) == ident(Opt(verbose=True))


def test_path_generators_are_left_out() -> None:
    class Learn(Task, name="tests.Learn"):
        epochs: Param[int] = 1
        checkpoint: Annotated[Path, pathgenerator("model.pt")]

    class Bare(Task, name="tests.Learn"):
        epochs: Param[int] = 1

    assert ident(Learn(epochs=3)) == ident(Bare(epochs=3))


def test_tags_are_left_out() -> None:
    tagged = Model(hidden=tag(64), dropout=tag(0.3))
    assert tagged.__tags__ == {"hidden": 64, "dropout": 0.3}
    assert ident(tagged) == ident(Model(hidden=64, dropout=0.3))


# --- rule 5: the type name ----------------------------------------------------------------


def test_two_classes_with_the_same_fields_differ() -> None:
    class A(Config):
        x: Param[int] = 0

    class B(Config):
        x: Param[int] = 0

    assert ident(A(x=1)) != ident(B(x=1))


def test_classes_pinned_to_the_same_name_are_equal() -> None:
    class A(Config, name="mylab.Shared"):
        x: Param[int] = 0

    class B(Config, name="mylab.Shared"):
        x: Param[int] = 0
        y: Meta[str] = ""

    class C(Config, name="mylab.Other"):
        x: Param[int] = 0

    assert ident(A(x=1)) == ident(B(x=1, y="z")) != ident(C(x=1))


# --- rule 6: sequences, mappings, sets, enums, constants, floats, paths -------------------


def test_lists_and_tuples_are_ordered() -> None:
    assert ident(Seq(xs=[1, 2])) != ident(Seq(xs=[2, 1]))
    assert ident(Seq(tup=(1, 2))) != ident(Seq(tup=(2, 1)))


def test_dict_keys_and_sets_are_order_free() -> None:
    assert ident(Seq(mapping={"a": 1, "b": 2})) == ident(Seq(mapping={"b": 2, "a": 1}))
    assert ident(Seq(mapping={"a": 1, "b": 2})) != ident(Seq(mapping={"a": 2, "b": 1}))
    words = [f"w{i}" for i in range(50)]
    assert ident(Seq(words=set(words))) == ident(Seq(words=set(reversed(words))))
    assert ident(Seq(frozen=frozenset(words))) == ident(Seq(frozen=frozenset(words[::-1])))
    assert ident(Loose(value={"x": {1, 2}})) == ident(Loose(value={"x": {2, 1}}))


def test_an_enum_is_its_type_name_and_member_name() -> None:
    def level(values: dict[str, int], qualname: str = "Level") -> Any:
        return enum.Enum("Level", values, module=__name__, qualname=qualname)  # type: ignore[misc]

    old, new, other = level({"LOW": 1}), level({"LOW": 10}), level({"LOW": 1}, "Other")
    assert ident(Loose(value=old.LOW)) == ident(Loose(value=new.LOW))  # values do not count
    assert ident(Loose(value=old.LOW)) != ident(Loose(value=other.LOW))
    assert ident(Loose(value=old.LOW)) != ident(Loose(value="LOW"))


def test_a_constant_is_always_included() -> None:
    class V2(Config, name="tests.Versioned"):
        x: Param[int] = 0
        version: Constant[int] = 2

    class V3(Config, name="tests.Versioned"):
        x: Param[int] = 0
        version: Constant[int] = 3

    class NoVersion(Config, name="tests.Versioned"):
        x: Param[int] = 0

    assert len({ident(V2()), ident(V3()), ident(NoVersion())}) == 3


def test_floats_have_one_zero_and_one_nan() -> None:
    assert ident(Float(value=-0.0)) == ident(Float(value=0.0))
    (nan_payload,) = struct.unpack("<d", struct.pack("<Q", 0xFFF8_0000_0000_0001))  # another NaN
    assert nan_payload != nan_payload
    assert ident(Float(value=float("nan"))) == ident(Float(value=-float("nan")))
    assert ident(Float(value=nan_payload)) == ident(Float(value=float("nan")))
    assert ident(Loose(value=[-0.0])) == ident(Loose(value=[0.0]))
    assert ident(Float(value=float("inf"))) != ident(Float(value=float("-inf")))
    assert ident(Float(value=0.1 + 0.2)) != ident(Float(value=0.3))  # IEEE doubles, exactly


def test_large_integers_are_kept_exactly() -> None:
    big = [2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**100, -(2**63), -(2**63) - 1]
    assert len({ident(Loose(value=v)) for v in big}) == len(big)
    assert ident(Loose(value=2**64)) != ident(Loose(value=str(2**64)))


def test_a_path_is_its_posix_string() -> None:
    assert ident(Where(path=Path("a/b"))) == ident(Where(path="a/b"))  # type: ignore[arg-type]
    assert ident(Where(path=Path("a/b"))) != ident(Where(path=Path("/a/b")))


def test_a_path_inside_the_workdir_is_taken_relative_to_it(workdir: Path) -> None:
    assert ident(Where(path=workdir / "data" / "x.csv")) == ident(Where(path=Path("data/x.csv")))
    outside = workdir.parent / "elsewhere"
    assert ident(Where(path=outside)) != ident(Where(path=Path("elsewhere")))


def test_moving_the_workdir_keeps_identifiers(tmp_path: Path) -> None:
    ids = []
    for wd in (tmp_path / "old", tmp_path / "moved" / "new"):
        token = current_workdir.set(wd)
        try:
            ids.append(ident(Where(path=wd / "jobs" / "model.pt")))
        finally:
            current_workdir.reset(token)
    assert ids[0] == ids[1]


def test_legato_workdir_variable_sets_the_workdir_of_a_job_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEGATO_WORKDIR", str(tmp_path))
    assert ident(Where(path=tmp_path / "x")) == ident(Where(path=Path("x")))


def test_datetimes_keep_their_time_zone() -> None:
    naive = dt.datetime(2024, 1, 1, 12)
    aware = naive.replace(tzinfo=dt.timezone.utc)
    assert ident(Where(when=naive)) != ident(Where(when=aware))
    paris = aware.astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert ident(Where(when=paris)) != ident(Where(when=aware))  # the offset is part of it
    assert ident(Loose(value=dt.date(2024, 1, 1))) != ident(Loose(value=naive.replace(hour=0)))


# --- rule 7: nested configurations and outputs of submitted tasks -------------------------


class Holder(Config, name="tests.Holder"):
    model: Param[Model]
    models: Param[list[Model]] = field(default=[])


def test_a_nested_config_contributes_its_identity() -> None:
    assert ident(Holder(model=Model(hidden=1))) != ident(Holder(model=Model(hidden=2)))
    assert ident(Holder(model=Model(device="cuda"))) == ident(Holder(model=Model()))
    assert ident(Holder(model={"hidden": 1})) == ident(Holder(model=Model(hidden=1)))  # type: ignore[arg-type]
    one, two = Model(hidden=1), Model(hidden=2)
    assert ident(Holder(model=one, models=[one, two])) != ident(
        Holder(model=one, models=[two, one])
    )


class Trained(Config, name="tests.Trained"):
    model: Param[Model]


class Train(Task, name="tests.Train"):
    model: Param[Model]
    seed: Param[int] = 0

    def config(self) -> Trained:
        return Trained(model=self.model)

    def execute(self) -> None:
        pass


@pytest.mark.anyio
async def test_the_output_of_a_submitted_task_includes_its_identifier(tmp_path: Path) -> None:
    async with experiment(tmp_path, "rule7"):
        first = await Train(model=Model()).submit()
        second = await Train(model=Model(), seed=1).submit()
    assert isinstance(first, Trained) and first == second == Trained(model=Model())
    assert len({ident(first), ident(second), ident(Trained(model=Model()))}) == 3


# --- computed once ------------------------------------------------------------------------


def test_identifier_is_computed_once(workdir: Path) -> None:
    inside = workdir / "data"
    token = current_workdir.set(None)
    try:
        config = Where(path=inside)
        first = ident(config)  # absolute: no workdir yet
    finally:
        current_workdir.reset(token)
    # Had it been computed again, the path would now be relative to the workdir.
    assert ident(config) == first != ident(Where(path=inside))
    holder = Holder(model=Model())
    assert ident(holder) == ident(holder)


class Link(Config, name="identity.Link"):
    prev: Param[Link | None] = None
    step: Param[int] = 0


def _chain(depth: int) -> Link:
    link = None
    for step in range(depth):
        link = Link(prev=link, step=tag(step) if step % 1000 == 0 else step)
    assert link is not None
    return link


def test_chains_deeper_than_the_recursion_limit() -> None:
    """A configuration holding 5 x the recursion limit of others has an identifier (the same
    as with a stack deep enough), tags, and a params round-trip: a sweep's chain of a thousand
    tasks, loaded in its last job, is as deep."""
    import sys

    depth = 5 * sys.getrecursionlimit()
    deep = _chain(depth)
    ident = deep.__identifier__
    assert loads(dumps(deep)).__identifier__ == ident
    assert deep.__tags__ == {"step": (depth - 1) // 1000 * 1000}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20 * depth)
    try:  # the plain recursive way, with room for it: the same identifier
        assert _chain(depth).__identifier__ == ident
    finally:
        sys.setrecursionlimit(limit)
