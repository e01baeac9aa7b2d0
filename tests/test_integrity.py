"""Integrity: a job directory always holds what it is named after (docs/configurations.md).

Each test reproduces a way the first release broke that promise: containers changed after
hashing, values that cannot be written, names that shadow legato's, numpy values, conflicting
inherited tags, `progress()` failing a job, and defaults changed under finished jobs.
"""

from __future__ import annotations

import copy
import enum
import importlib
import io
import json
import math
import pickle
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

import legato
from legato import (
    Config,
    ConfigError,
    Meta,
    Param,
    Task,
    ValidationError,
    experiment,
    field,
    tag,
)

pytestmark = pytest.mark.anyio


class Color(enum.Enum):
    RED = "red"


class Inner(Config):
    size: Param[int] = 1
    anything: Param[Any] = None


class Fit(Task):
    layers: Param[list[int]]
    options: Param[dict[str, float]] = field(default_factory=dict)
    names: Param[set[str]] = field(default_factory=set)
    extra: Param[Any] = None
    nested: Param[list[list[int]]] = field(default_factory=list)
    inner: Param[Inner] = Inner()
    note: Meta[Any] = None

    def execute(self) -> None:
        Path("seen.json").write_text(json.dumps(self.layers))


# --- 1. mutation after hashing -------------------------------------------------------------


def _mutations(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [
            lambda: value.append(1),
            lambda: value.extend([1]),
            lambda: value.insert(0, 1),
            lambda: value.__setitem__(0, 5),
            lambda: value.__delitem__(0),
            lambda: value.pop(),
            lambda: value.remove(value[0]),
            lambda: value.clear(),
            lambda: value.sort(),
            lambda: value.reverse(),
            lambda: value.__iadd__([1]),
            lambda: value.__imul__(2),
        ]
    if isinstance(value, dict):
        return [
            lambda: value.__setitem__("z", 1.0),
            lambda: value.__delitem__("a"),
            lambda: value.pop("a"),
            lambda: value.popitem(),
            lambda: value.clear(),
            lambda: value.update(z=1.0),
            lambda: value.setdefault("z", 1.0),
            lambda: value.__ior__({"z": 1.0}),
        ]
    return [
        lambda: value.add("z"),
        lambda: value.discard("a"),
        lambda: value.remove("a"),
        lambda: value.pop(),
        lambda: value.clear(),
        lambda: value.update({"z"}),
        lambda: value.__ior__({"z"}),
        lambda: value.__iand__(set()),
        lambda: value.__isub__({"a"}),
        lambda: value.__ixor__({"a"}),
        lambda: value.difference_update({"a"}),
        lambda: value.intersection_update(set()),
        lambda: value.symmetric_difference_update({"a"}),
    ]


def test_containers_are_immutable_after_construction() -> None:
    fit = Fit(
        layers=[64, 64],
        options={"a": 1.0},
        names={"a"},
        extra={"xs": [1, [2]], "s": {3}},
        nested=[[1]],
    )
    before = fit.__identifier__
    targets = [fit.layers, fit.options, fit.names, fit.extra, fit.extra["xs"], fit.nested[0]]
    targets += [fit.extra["xs"][1], fit.extra["s"]]
    for value in targets:
        snapshot = copy.deepcopy(value)
        for mutate in _mutations(value):
            with pytest.raises(ConfigError, match="immutable"):
                mutate()
        assert value == snapshot
    assert fit.__identifier__ == before
    assert Fit(layers=[64, 64], options={"a": 1.0}, names={"a"}).layers == [64, 64]
    with pytest.raises(AttributeError):
        fit.layers = [1]  # type: ignore[misc]
    with pytest.raises(AttributeError):
        fit.anything = 1  # type: ignore[attr-defined]


def test_input_containers_are_copied_and_stay_the_callers() -> None:
    layers = [64, 64]
    extra: dict[str, Any] = {"xs": [1]}
    fit = Fit(layers=layers, extra=extra)
    layers.append(32)
    extra["xs"].append(2)
    assert fit.layers == [64, 64] and fit.extra == {"xs": [1]}
    assert fit.__identifier__ == Fit(layers=[64, 64], extra={"xs": [1]}).__identifier__


def test_frozen_containers_read_like_plain_ones() -> None:
    fit = Fit(layers=[1, 2], options={"a": 1.0}, names={"x"}, extra=[1, {"k": [2]}])
    assert isinstance(fit.layers, list) and isinstance(fit.options, dict)
    assert isinstance(fit.names, set) and isinstance(fit.extra, list)
    assert fit.layers[0] == 1 and list(fit.layers) == [1, 2] and fit.layers[::-1] == [2, 1]
    assert fit.layers + [3] == [1, 2, 3]  # noqa: RUF005 - what users write
    assert sorted(fit.names | {"y"}) == ["x", "y"]
    assert repr(fit.layers) == "[1, 2]" and repr(fit.options) == "{'a': 1.0}"
    copied = fit.layers.copy()
    copied.append(3)  # a copy is the caller's own
    assert copied == [1, 2, 3]
    assert json.loads(json.dumps(fit.extra)) == [1, {"k": [2]}]
    assert msgspec.json.decode(msgspec.json.encode(fit.extra)) == [1, {"k": [2]}]
    assert msgspec.to_builtins(fit.options) == {"a": 1.0}
    for value in (fit.layers, fit.options, fit.names, fit.extra):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value and copy.copy(value) == value
    assert pickle.loads(pickle.dumps(fit)).__identifier__ == fit.__identifier__
    again = Fit(layers=fit.layers, options=fit.options, names=fit.names, extra=fit.extra)
    assert again.__identifier__ == fit.__identifier__


async def test_loaded_job_has_its_directory_identifier(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp") as xp:
        fit = Fit(layers=[64, 64], extra={"a": [1, 2]})
        _ = fit.__identifier__
        with pytest.raises(ConfigError):
            fit.layers.append(32)
        await fit.submit()
    (job,) = xp.jobs
    assert json.loads((job.path / "seen.json").read_text()) == [64, 64]
    loaded = legato.load(job.path)
    assert loaded.__identifier__ == job.identifier
    with pytest.raises(ConfigError):
        loaded.layers.append(1)


# --- 2. containers that contain themselves --------------------------------------------------


def _self_list() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


def _self_dict() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["me"] = [value]
    return value


@pytest.mark.parametrize("make", [_self_list, _self_dict])
def test_a_container_that_contains_itself_is_a_validation_error(make: Any) -> None:
    with pytest.raises(ValidationError, match=r"Fit\.extra.*contains itself"):
        Fit(layers=[1], extra=make())
    with pytest.raises(ValidationError, match=r"Fit\.note.*contains itself"):
        Fit(layers=[1], note=make())
    with pytest.raises(ValidationError, match=r"Inner\.anything.*contains itself"):
        Fit(layers=[1], inner=Inner(anything=[make()]))


def test_a_value_held_twice_is_no_cycle() -> None:
    shared = [1, 2]
    fit = Fit(layers=[1], extra=[shared, shared, {"a": shared}])
    assert fit.extra == [[1, 2], [1, 2], {"a": [1, 2]}]
    assert len(fit.__identifier__) == 64


# --- 4. conflicting inherited tags ----------------------------------------------------------


class Run(Config):
    lr: Param[float]
    seed: Param[int] = 0


class Aggregate(Task):
    runs: Param[list[Run]]
    lr: Param[float] = 0.0

    def execute(self) -> None:
        pass


def test_conflicting_inherited_tags_are_dropped_with_a_warning() -> None:
    runs = [Run(lr=tag(lr), seed=tag(1)) for lr in (0.1, 0.01, 0.001)]
    agg = Aggregate(runs=runs)
    with pytest.warns(UserWarning, match=r"tag 'lr'.*0\.1.*0\.01"):
        tags = agg.__tags__
    assert tags == {"seed": 1}
    # Agreeing values are inherited; the task's own tag wins over a conflict.
    assert Aggregate(runs=[Run(lr=tag(0.1)), Run(lr=tag(0.1))]).__tags__ == {"lr": 0.1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Aggregate(runs=runs, lr=tag(0.5)).__tags__ == {"lr": 0.5, "seed": 1}
    # A conflict below is not undone by one more agreeing value further up.
    outer = Aggregate(runs=[Run(lr=tag(0.1)), *Aggregate(runs=runs).runs])
    with pytest.warns(UserWarning, match="'lr'"):
        assert "lr" not in outer.__tags__


async def test_job_of_conflicting_dependencies_is_not_listed_under_either(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp") as xp:
        runs = [await Fit(layers=[i], extra=tag(i)).submit() for i in (1, 2)]
        await Fit(layers=[0], extra=runs).submit()
    with pytest.warns(UserWarning, match="'extra'"):
        assert "extra" not in xp.jobs[-1].tags


# --- 5. errors at construction or submit, never at launch -----------------------------------


class Holder(Config):
    note: Meta[Any] = None
    any_param: Param[Any] = None
    text: Param[str] = ""
    label: Meta[str] = ""
    labels: Meta[list[str]] = field(default_factory=list)
    where: Meta[Path] = Path(".")


@pytest.mark.parametrize("bad", [lambda: 1, object(), io.StringIO(), {"a": [object()]}, {1: 2}])
@pytest.mark.parametrize("name", ["note", "any_param"])
def test_unencodable_values_fail_at_construction(bad: Any, name: str) -> None:
    with pytest.raises(ValidationError, match=rf"Holder\.{name}"):
        Holder(**{name: bad})


def test_a_lone_surrogate_is_a_validation_error() -> None:
    for name in ("note", "label", "labels", "any_param"):
        value = ["a\udc80"] if name == "labels" else "a\udc80"
        with pytest.raises(ValidationError, match=rf"Holder\.{name}.*surrogate"):
            Holder(**{name: value})
    for name in ("note", "where"):
        with pytest.raises(ValidationError, match=rf"Holder\.{name}.*surrogate"):
            Holder(**{name: Path("a\udc80")})
    holder = Holder(text="a\udc80")  # an identity str: checked with the identity
    with pytest.raises(ValidationError, match=r"Holder\.text.*surrogate"):
        _ = holder.__identifier__
    assert len(Holder(text="é ☃ 😀").__identifier__) == 64


async def test_meta_lambda_fails_at_construction_not_launch(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp") as xp:
        with pytest.raises(ValidationError, match=r"Fit\.note"):
            Fit(layers=[1], note=lambda: 1)
    assert xp.jobs == []


@pytest.mark.parametrize("name", ["submit", "execute", "config", "__identifier__", "__x__"])
def test_fields_may_not_shadow_legatos_names(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"{name}.*reserved"):
        type("Bad", (Task,), {"__annotations__": {name: Param[int]}, "__module__": __name__})
    with pytest.raises(ConfigError, match=rf"{name}.*reserved"):
        type("Bad", (Config,), {"__annotations__": {name: Param[int]}, "__module__": __name__})


class AbstractStep(Task):
    """A base Task without `execute` may be declared and built; not submitted."""

    size: Param[int] = 1


async def test_task_without_execute_fails_at_submit(tmp_path: Path) -> None:
    step = AbstractStep()
    assert len(step.__identifier__) == 64
    async with experiment(tmp_path, "xp") as xp:
        with pytest.raises(ConfigError, match=r"AbstractStep.*execute"):
            await step.submit()
    assert xp.jobs == []


# --- 6. numpy values ------------------------------------------------------------------------


class Numbers(Config):
    n: Param[int] = 0
    x: Param[float] = 0.0
    flag: Param[bool] = False
    name: Param[str] = ""
    xs: Param[list[float]] = field(default_factory=list)
    ns: Param[tuple[int, ...]] = ()
    maybe: Param[int | None] = None
    anything: Param[Any] = None


def test_numpy_scalars_convert_and_hash_like_python_values() -> None:
    cases: list[tuple[str, Any, Any]] = [
        ("n", np.int64(3), 3),
        ("n", np.int32(-7), -7),
        ("n", np.uint8(200), 200),
        ("x", np.float32(0.1), float(np.float32(0.1))),
        ("x", np.float64(0.25), 0.25),
        ("x", np.int64(2), 2.0),
        ("flag", np.bool_(True), True),
        ("name", np.str_("abc"), "abc"),
        ("maybe", np.int16(5), 5),
        ("anything", np.int64(4), 4),
        ("anything", np.float64(1.5), 1.5),
    ]
    for name, np_value, py_value in cases:
        config = Numbers(**{name: np_value})
        assert type(getattr(config, name)) is type(py_value), name
        assert getattr(config, name) == py_value
        assert config.__identifier__ == Numbers(**{name: py_value}).__identifier__, name


def test_numpy_arrays_convert_to_lists() -> None:
    config = Numbers(xs=np.linspace(0.0, 1.0, 3), ns=np.arange(3), anything=np.arange(2))
    assert config.xs == [0.0, 0.5, 1.0] and type(config.xs[0]) is float
    assert config.ns == (0, 1, 2) and config.anything == [0, 1]
    expected = Numbers(xs=[0.0, 0.5, 1.0], ns=(0, 1, 2), anything=[0, 1])
    assert config.__identifier__ == expected.__identifier__
    sweep = [Numbers(x=x).__identifier__ for x in np.arange(0.0, 0.3, 0.1)]
    assert sweep == [Numbers(x=float(x)).__identifier__ for x in np.arange(0.0, 0.3, 0.1)]


def test_numpy_values_still_checked() -> None:
    with pytest.raises(ValidationError, match=r"Numbers\.n"):
        Numbers(n=np.float64(1.5))
    with pytest.raises(ValidationError, match=r"Numbers\.n"):
        Numbers(n=np.bool_(True))
    with pytest.raises(ValidationError, match=r"Numbers\.xs"):
        Numbers(xs=np.float64(1.0))


def test_numpy_is_imported_only_for_numpy_values(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from typing import Any
        from legato import Config, Param
        class C(Config):
            x: Param[float] = 0.0
            a: Param[Any] = None
            xs: Param[list[int]] = []
        C(x=1, a=[1, {"b": 2}], xs=(1, 2)).__identifier__
        print("numpy" in sys.modules)
        """
    )
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "False"


# --- 7. progress() never fails a job --------------------------------------------------------


class Reporter(Task):
    def execute(self) -> None:
        for value in (1.0000000000000002, 5.0, -0.5, math.nan, math.inf, "half", None, 0.5):
            legato.progress(value)  # type: ignore[arg-type]
        legato.progress(0.7, desc=3)  # type: ignore[arg-type]


async def test_progress_clamps_and_ignores_bad_values(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp") as xp:
        await Reporter().submit()
    (job,) = xp.jobs
    assert job.state is legato.JobState.DONE
    stderr = job.stderr_path.read_text()
    assert "nan" in stderr and "'half'" in stderr


def test_progress_outside_a_job_warns_for_bad_values() -> None:
    with pytest.warns(UserWarning, match="nan"):
        legato.progress(math.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        legato.progress(1.0000000000000002)
        legato.progress(5)


# --- default-change guard -------------------------------------------------------------------

GUARD_MODULE = """
from legato import Config, Param, Task, field

class Model(Config):
    width: Param[int] = {width}
    layers: Param[tuple[int, ...]] = {layers}

class Learn(Task):
    model: Param[Model] = field(default_factory=Model)
    epochs: Param[int] = {epochs_decl}
    lr: Param[float] = 0.1

    def execute(self):
        open("ran.txt", "a").write("ran\\n")
"""


def _guard_module(
    tmp_path: Path, epochs: int, width: int = 8, pin: bool = False, layers: Any = (4, 4)
) -> Any:
    """The user's module, as edited between runs: imported afresh each time."""
    decl = f"field(default={epochs}, ignore_default=False)" if pin else str(epochs)
    text = GUARD_MODULE.format(epochs_decl=decl, width=width, layers=tuple(layers))
    (tmp_path / "guardmod.py").write_text(text)
    sys.modules.pop("guardmod", None)
    importlib.invalidate_caches()
    return importlib.import_module("guardmod")


@pytest.fixture
def guard_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("guardmod", None)


async def test_changed_default_is_caught_at_reuse(guard_path: Path) -> None:
    mod = _guard_module(guard_path, epochs=10)
    async with experiment(guard_path / "runs", "xp") as xp:
        await mod.Learn().submit()
    first = xp.jobs[0]
    assert (first.path / "ran.txt").read_text() == "ran\n"

    mod = _guard_module(guard_path, epochs=20)
    with pytest.raises(legato.ExperimentFailed, match=r"Learn\.epochs.*10.*20") as info:
        async with experiment(guard_path / "runs", "xp") as xp:
            assert (await mod.Learn().submit()).__identifier__ == first.identifier
    (job,) = xp.jobs
    assert job.state is legato.JobState.FAILED
    assert "ignore_default=False" in (job.failure_reason or "")
    assert (job.path / "ran.txt").read_text() == "ran\n"  # neither rerun nor touched
    assert "on_default_change" in str(info.value)

    with pytest.warns(legato.DefaultChangedWarning, match=r"Learn\.epochs.*10.*20"):
        async with experiment(guard_path / "runs", "xp", on_default_change="warn") as xp:
            await mod.Learn().submit()
    assert xp.jobs[0].state is legato.JobState.DONE
    assert (first.path / "ran.txt").read_text() == "ran\n"

    # The fix: a default pinned in the identity makes another identifier, which runs.
    mod = _guard_module(guard_path, epochs=20, pin=True)
    async with experiment(guard_path / "runs", "xp") as xp:
        await mod.Learn().submit()
    assert xp.jobs[0].identifier != first.identifier
    assert (xp.jobs[0].path / "ran.txt").read_text() == "ran\n"


async def test_changed_default_of_a_nested_config_is_caught(guard_path: Path) -> None:
    mod = _guard_module(guard_path, epochs=10, width=8)
    async with experiment(guard_path / "runs", "xp"):
        await mod.Learn().submit()
    mod = _guard_module(guard_path, epochs=10, width=16)
    with pytest.raises(legato.ExperimentFailed, match=r"Model\.width.*8.*16"):
        async with experiment(guard_path / "runs", "xp"):
            await mod.Learn().submit()
    mod = _guard_module(guard_path, epochs=10, width=8, layers=[4, 8])
    with pytest.raises(legato.ExperimentFailed, match=r"Model\.layers.*with \(4, 4\).*\(4, 8\)"):
        async with experiment(guard_path / "runs", "xp"):
            await mod.Learn().submit()
    # Unchanged defaults reuse silently.
    mod = _guard_module(guard_path, epochs=10, width=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with experiment(guard_path / "runs", "xp") as xp:
            await mod.Learn().submit()
    assert xp.jobs[0].state is legato.JobState.DONE


async def test_params_without_a_defaults_record_are_reused(guard_path: Path) -> None:
    mod = _guard_module(guard_path, epochs=10)
    async with experiment(guard_path / "runs", "xp") as xp:
        await mod.Learn().submit()
    params = xp.jobs[0].path / "params.msgpack"
    doc = msgspec.msgpack.decode(params.read_bytes())
    assert any("defaults" in record for record in doc["objects"])
    for record in doc["objects"]:
        record.pop("defaults", None)
    params.write_bytes(msgspec.msgpack.encode(doc))  # as written by the first release
    mod = _guard_module(guard_path, epochs=20)
    async with experiment(guard_path / "runs", "xp") as xp:
        await mod.Learn().submit()
    assert xp.jobs[0].state is legato.JobState.DONE


async def test_bad_on_default_change_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_default_change"):
        async with experiment(tmp_path, "xp", on_default_change="ignore"):  # type: ignore[arg-type]
            pass
