"""Declaring configurations and tasks (docs/configurations.md): fields, construction,
validation errors."""

from __future__ import annotations

import datetime as dt
import enum
import os
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pytest

import legato
from legato import (
    Config,
    ConfigError,
    Constant,
    Meta,
    Option,
    Param,
    Task,
    ValidationError,
    field,
    pathgenerator,
    tag,
)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Mode(str, enum.Enum):
    FAST = "fast"


class Model(Config):
    hidden: Param[int] = 128
    dropout: Param[float] = 0.1
    device: Meta[str] = "cpu"
    version: Constant[int] = 2


class Learn(Task):
    model: Param[Model]
    epochs: Param[int] = 100
    lr: Param[float] = 1e-3
    checkpoint: Annotated[Path, pathgenerator("model.pt")]


class Stack(Config):
    layers: Param[list[Model]] = field(default_factory=list)


class Pipeline(Config):
    learn: Param[Learn]


class Everything(Config):
    b: Param[bool] = False
    i: Param[int] = 0
    f: Param[float] = 0.0
    s: Param[str] = ""
    raw: Param[bytes] = b""
    none: Param[None] = None
    color: Param[Color] = Color.RED
    path: Param[Path] = Path()
    when: Param[dt.datetime] = dt.datetime(2000, 1, 1)
    day: Param[dt.date] = dt.date(2000, 1, 1)
    xs: Param[list[int]] = field(default_factory=list)
    tup: Param[tuple[float, ...]] = ()
    pair: Param[tuple[int, str]] = (0, "")
    mapping: Param[dict[str, float]] = field(default_factory=dict)
    words: Param[set[str]] = field(default_factory=set)
    frozen: Param[frozenset[int]] = frozenset()
    model: Param[Model | None] = None
    maybe: Param[int | None] = None
    choice: Param[Literal["a", "b"]] = "a"
    anything: Param[Any] = None


# --- declaration and construction ---------------------------------------------------------


def test_config_and_task_are_msgspec_structs() -> None:
    assert issubclass(Config, msgspec.Struct) and issubclass(Task, msgspec.Struct)
    assert isinstance(Learn(model=Model()), msgspec.Struct)


def test_keyword_only_construction() -> None:
    with pytest.raises(TypeError):
        Model(256)  # type: ignore[misc]
    assert Model(hidden=256).hidden == 256


def test_required_field_may_follow_fields_with_defaults() -> None:
    class Late(Config):
        a: Param[int] = 1
        b: Param[str]
        c: Param[float] = 2.0
        d: Param[bool]

    late = Late(d=True, b="x")
    assert (late.a, late.b, late.c, late.d) == (1, "x", 2.0, True)


def test_missing_required_field_names_it() -> None:
    with pytest.raises(TypeError, match="model"):
        Learn()  # type: ignore[call-arg]


def test_unknown_field_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="epoch"):
        Learn(model=Model(), epoch=3)  # type: ignore[call-arg]


def test_configurations_are_frozen() -> None:
    model = Model()
    with pytest.raises(AttributeError):
        model.hidden = 3  # type: ignore[misc]


def test_equal_fields_make_equal_and_hashable_configs() -> None:
    assert Model(hidden=3) == Model(hidden=3)
    assert len({Model(hidden=3), Model(hidden=3), Model(hidden=4)}) == 2


def test_inheritance_adds_and_overrides_fields() -> None:
    class Base(Config):
        a: Param[int] = 1
        meta: Meta[str] = "m"

    class Child(Base):
        a: Param[int] = 5
        b: Param[str]

    child = Child(b="x")
    assert (child.a, child.b, child.meta) == (5, "x", "m")
    assert isinstance(child, Base)
    with pytest.raises(ValidationError, match=r"Child\.a"):
        Child(a="no", b="x")  # type: ignore[arg-type]


def test_inherited_field_options_are_kept() -> None:
    class Base(Config):
        seed: Param[int] = field(default=0, ignore_default=False)

    class Child(Base):
        x: Param[int] = 0

    class Same(Config, name=f"{Child.__module__}.{Child.__qualname__}"):
        seed: Param[int] = 0
        x: Param[int] = 0

    # Same encodes the default seed away, Child keeps it: only the option differs.
    assert Child().__identifier__ != Same().__identifier__
    assert Child(seed=1).__identifier__ == Same(seed=1).__identifier__


def test_name_keyword_must_be_a_non_empty_string() -> None:
    with pytest.raises(ConfigError):

        class Bad(Config, name=""):
            x: Param[int] = 0


def test_a_script_class_is_named_after_the_script_however_it_is_started(tmp_path: Path) -> None:
    """`__main__` stands for the script's module name, so identifiers agree."""
    script = tmp_path / "mylab_script.py"
    script.write_text(
        textwrap.dedent(
            """
            from legato import Config, Param

            class Exp(Config):
                x: Param[int] = 0

            if __name__ == "__main__":
                print(Exp(x=1).__identifier__)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    show = "import mylab_script; print(mylab_script.Exp(x=1).__identifier__)"
    ways = [[str(script)], ["-m", "mylab_script"], ["-c", show]]
    out = {
        subprocess.run(
            [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True
        ).stdout
        for args in ways
    }
    assert len(out) == 1 and re.fullmatch(r"[0-9a-f]{64}\n", out.pop())


def test_option_is_an_alias_of_meta() -> None:
    class WithOption(Config, name="tests.WithOption"):
        x: Param[int] = 0
        verbose: Option[bool] = False

    class WithMeta(Config, name="tests.WithOption"):
        x: Param[int] = 0
        verbose: Meta[bool] = False

    assert WithOption(verbose=True).__identifier__ == WithMeta().__identifier__


def test_meta_fields_are_validated_too() -> None:
    with pytest.raises(ValidationError, match=r"Model\.device"):
        Model(device=0)  # type: ignore[arg-type]


def test_constant_has_its_value_and_cannot_be_set() -> None:
    assert Model().version == 2
    with pytest.raises(ConfigError, match=r"Model\.version.*Constant"):
        Model(version=3)


def test_constant_needs_a_default() -> None:
    class NoDefault(Config):
        version: Constant[int]

    with pytest.raises(ConfigError, match="needs a default"):
        NoDefault(version=1)


def test_path_generator_cannot_be_set() -> None:
    assert Learn(model=Model()).checkpoint is None  # resolved at submission
    with pytest.raises(ConfigError, match=r"Learn\.checkpoint.*path generator"):
        Learn(model=Model(), checkpoint=Path("mine.pt"))


def test_pathgenerator_as_a_default_is_the_same_field() -> None:
    """`checkpoint: Path = pathgenerator(...)`, the spelling type checkers understand, makes
    the same field as the `Annotated` one: not settable, not identity, resolved at submission,
    inherited."""

    class Typed(Task, name="config.Typed"):
        model: Param[Model]
        checkpoint: Path = pathgenerator("model.pt")

        def execute(self) -> None:
            pass

    class Sub(Typed, name="config.Sub"):
        extra: Param[int] = 0

    assert Typed(model=Model()).checkpoint is None
    for cls in (Typed, Sub):
        with pytest.raises(ConfigError, match=r"\.checkpoint.*path generator"):
            cls(model=Model(), checkpoint=Path("mine.pt"))
    same = Typed(model=Model()).__identifier__
    assert Typed(model=Model()).__identifier__ == same  # no path in the identity
    assert Sub._legato_compile().pathgens["checkpoint"].name == "model.pt"
    with pytest.raises(TypeError, match="never a constructor argument"):
        pathgenerator("x", init=True)  # type: ignore[arg-type]


def test_pathgenerator_takes_a_name_or_a_callable() -> None:
    with pytest.raises(TypeError):
        pathgenerator("")
    assert callable(pathgenerator(lambda task: "x").name)


def test_field_takes_default_or_factory_not_both() -> None:
    with pytest.raises(TypeError):
        field(default=[], default_factory=list)


def test_tag_is_used_as_the_value_and_recorded() -> None:
    learn = Learn(model=Model(hidden=tag(256)), lr=tag(1))
    assert learn.model.hidden == 256 and learn.lr == 1.0 and type(learn.lr) is float
    assert learn.__tags__ == {"hidden": 256, "lr": 1.0}
    assert Model().__tags__ == {}


def test_own_tag_overrides_a_nested_one_of_the_same_name() -> None:
    class Wrap(Config):
        model: Param[Model]
        hidden: Param[int] = 0

    assert Wrap(model=Model(hidden=tag(1)), hidden=tag(2)).__tags__ == {"hidden": 2}


# --- allowed value types ------------------------------------------------------------------

VALID: list[tuple[str, Any, Any]] = [
    ("b", True, True),
    ("i", -3, -3),
    ("i", 2**80, 2**80),
    ("f", 2.5, 2.5),
    ("f", 3, 3.0),
    ("s", "héllo", "héllo"),
    ("s", Mode.FAST, "fast"),
    ("raw", b"\x00", b"\x00"),
    ("raw", bytearray(b"ab"), b"ab"),
    ("none", None, None),
    ("color", Color.GREEN, Color.GREEN),
    ("color", "green", Color.GREEN),
    ("path", Path("a/b"), Path("a/b")),
    ("path", "a/b", Path("a/b")),
    ("when", dt.datetime(2024, 1, 2, 3, 4), dt.datetime(2024, 1, 2, 3, 4)),
    ("day", dt.date(2024, 1, 2), dt.date(2024, 1, 2)),
    ("xs", [1, 2], [1, 2]),
    ("xs", (1, 2), [1, 2]),
    ("tup", [1, 2.5], (1.0, 2.5)),
    ("pair", [1, "x"], (1, "x")),
    ("mapping", {"a": 1}, {"a": 1.0}),
    ("words", ["a", "b", "a"], {"a", "b"}),
    ("words", frozenset({"a"}), {"a"}),
    ("frozen", {1, 2}, frozenset({1, 2})),
    ("model", Model(hidden=1), Model(hidden=1)),
    ("model", {"hidden": 1}, Model(hidden=1)),
    ("maybe", None, None),
    ("maybe", 4, 4),
    ("choice", "b", "b"),
    ("anything", {"k": [1, (2.0, None)]}, {"k": [1, (2.0, None)]}),
]


@pytest.mark.parametrize(("name", "given", "stored"), VALID, ids=lambda v: repr(v)[:20])
def test_allowed_values_are_converted_to_the_declared_type(
    name: str, given: Any, stored: Any
) -> None:
    value = getattr(Everything(**{name: given}), name)
    # Lists, dicts and sets are held read-only: subclasses of the plain ones.
    assert value == stored and type(value).__mro__[type(value) is not type(stored)] is type(stored)
    Everything(**{name: given}).__identifier__  # every allowed value has an identity


INVALID: list[tuple[str, Any, str]] = [
    ("b", 1, "bool"),
    ("i", True, "int"),
    ("i", 1.0, "int"),
    ("i", "1", "int"),
    ("f", True, "float"),
    ("f", "1.0", "float"),
    ("f", 10**400, "float"),
    ("s", b"x", "str"),
    ("raw", "x", "bytes"),
    ("none", 0, "None"),
    ("color", "blue", "Color"),
    ("path", 3, "Path"),
    ("when", "2024-01-01", "datetime"),
    ("day", "2024-01-01", "date"),
    ("xs", "12", "list"),
    ("xs", {1, 2}, "list"),
    ("pair", (1, "x", 2), "tuple"),
    ("mapping", [("a", 1)], "dict"),
    ("words", "ab", "set"),
    ("model", Learn(model=Model()), "Model"),
    ("maybe", "x", "int | None"),
    ("choice", "c", "Literal"),
]


@pytest.mark.parametrize(("name", "given", "expected"), INVALID, ids=lambda v: repr(v)[:20])
def test_bad_values_raise_validation_error_naming_field_type_and_value(
    name: str, given: Any, expected: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Everything(**{name: given})
    message = str(info.value)
    assert message.startswith(f"Everything.{name}")
    assert expected in message
    assert repr(given)[:40] in message
    assert info.value.path == f"Everything.{name}" and info.value.value is given


def test_validation_error_is_a_type_and_value_error() -> None:
    assert issubclass(ValidationError, TypeError)
    assert issubclass(ValidationError, ValueError)
    assert issubclass(ValidationError, legato.LegatoError)


def test_error_in_a_nested_mapping_names_the_whole_path() -> None:
    with pytest.raises(ValidationError, match=r"^Learn\.model\.hidden: expected int.*'x'"):
        Learn(model={"hidden": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"^Pipeline\.learn\.model\.dropout"):
        Pipeline(learn={"model": {"dropout": "high"}})  # type: ignore[arg-type]


def test_error_in_a_container_names_the_index_or_key() -> None:
    with pytest.raises(ValidationError, match=r"^Everything\.xs\[1\]: expected int"):
        Everything(xs=[1, "two", 3])
    with pytest.raises(ValidationError, match=r"^Everything\.pair\[1\]: expected str"):
        Everything(pair=(1, 2))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"^Everything\.mapping\['b'\]: expected float"):
        Everything(mapping={"a": 1.0, "b": "x"})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match=r"^Everything\.mapping key.*str"):
        Everything(mapping={1: 1.0})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match=r"^Stack\.layers\[0\]\.hidden"):
        Stack(layers=[{"hidden": "x"}])  # type: ignore[list-item]


def test_an_any_value_of_unsupported_type_fails_at_construction() -> None:
    with pytest.raises(ValidationError, match=r"Everything\.anything"):
        Everything(anything=object())
    with pytest.raises(ValidationError, match=r"Everything\.anything key"):
        Everything(anything={1: "x"})


class Opaque:
    pass


@pytest.mark.parametrize("tp", [complex, Opaque, type, dict[int, str], list[Opaque]])
def test_unsupported_declared_types_are_rejected(tp: Any) -> None:
    # Built by hand: a string annotation could not see the local `tp`.
    namespace = {"__annotations__": {"x": Param[tp]}, "__module__": __name__}
    Odd = types.new_class("Odd", (Config,), exec_body=lambda ns: ns.update(namespace))
    with pytest.raises(ConfigError, match=r"Odd\.x"):
        Odd(x=1)  # the plan is compiled at first construction
