"""`legato.dumps` / `legato.loads`: the params file format round-trips configurations."""

from __future__ import annotations

import datetime as dt
import enum
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest

import legato
from legato import (
    Config,
    Constant,
    DeserializationError,
    Meta,
    Param,
    Task,
    dumps,
    experiment,
    field,
    loads,
    pathgenerator,
    tag,
)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Model(Config):
    hidden: Param[int] = 128
    dropout: Param[float] = 0.1
    device: Meta[str] = "cpu"
    version: Constant[int] = 2


class Everything(Config):
    model: Param[Model]
    models: Param[list[Model]] = field(default_factory=list)
    words: Param[set[str]] = field(default_factory=set)
    frozen: Param[frozenset[int]] = frozenset()
    color: Param[Color] = Color.RED
    path: Param[Path] = Path()
    when: Param[dt.datetime | None] = None
    day: Param[dt.date | None] = None
    raw: Param[bytes] = b""
    big: Param[int] = 0
    pair: Param[tuple[int, str]] = (0, "")
    mapping: Param[dict[str, list[float]]] = field(default_factory=dict)
    anything: Param[Any] = None
    verbose: Meta[bool] = False


def roundtrip(config: Config) -> Any:
    data = dumps(config)
    assert isinstance(data, bytes)
    return loads(data)


class Link(Config):
    index: Param[int]
    before: Param[Any] = None


def test_a_chain_far_deeper_than_the_recursion_limit_round_trips() -> None:
    chain: Any = None
    for i in range(3 * sys.getrecursionlimit()):
        chain = Link(index=i, before=[chain] if i % 2 else chain)
        chain.__identifier__  # as submit() does, link by link
    data = dumps(chain)
    again = loads(data)
    assert dumps(again) == data
    for _ in range(5):
        again = again.before[0] if isinstance(again.before, list) else again.before
    assert again.index == chain.index - 5


@pytest.fixture
def everything() -> Everything:
    shared = Model(hidden=tag(256), device="cuda:1")
    return Everything(
        model=shared,
        models=[shared, Model(dropout=0.5)],
        words={"b", "a", "c"},
        frozen=frozenset({3, 1}),
        color=tag(Color.GREEN),
        path=Path("/data/train.csv"),
        when=dt.datetime(2024, 5, 17, 13, 45, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        day=dt.date(2024, 5, 17),
        raw=b"\x00\xff",
        big=2**70,
        pair=(1, "one"),
        mapping={"x": [1.0, -0.0]},
        anything={"k": [1, (2.0, None), b"b", Color.RED, Path("p")], "s": {"x"}},
        verbose=True,
    )


def test_roundtrip_keeps_values_identifier_and_type(everything: Everything) -> None:
    loaded = roundtrip(everything)
    assert type(loaded) is Everything
    assert loaded == everything
    assert loaded.__identifier__ == everything.__identifier__
    for name in everything.__struct_fields__:
        assert type(getattr(loaded, name)) is type(getattr(everything, name)), name


def test_roundtrip_keeps_meta_fields_and_constants(everything: Everything) -> None:
    loaded = roundtrip(everything)
    assert loaded.verbose is True
    assert loaded.model.device == "cuda:1"
    assert loaded.model.version == 2


def test_roundtrip_keeps_tags_of_nested_configs(everything: Everything) -> None:
    assert everything.__tags__ == {"hidden": 256, "color": Color.GREEN}
    loaded = roundtrip(everything)
    assert loaded.__tags__ == everything.__tags__
    assert loaded.model.__tags__ == {"hidden": 256}
    assert loaded.models[1].__tags__ == {}


def test_shared_configurations_stay_shared(everything: Everything) -> None:
    loaded = roundtrip(everything)
    assert loaded.models[0] is loaded.model


def test_a_task_roundtrips() -> None:
    class Learn(Task):
        model: Param[Model]
        checkpoint: Annotated[Path, pathgenerator("model.pt")]

    # A class local to a function is found again through the registry of config classes.
    learn = Learn(model=Model(hidden=3))
    loaded = roundtrip(learn)
    assert type(loaded) is Learn and loaded.__identifier__ == learn.__identifier__
    assert loaded.checkpoint is None


def test_dumps_takes_only_configurations() -> None:
    with pytest.raises(TypeError):
        dumps({"hidden": 3})  # type: ignore[arg-type]


class Trained(Config):
    model: Param[Model]


class Train(Task):
    model: Param[Model]
    weights: Annotated[Path, pathgenerator("weights.bin")]

    def config(self) -> Trained:
        return Trained(model=self.model)

    def execute(self) -> None:
        self.weights.write_bytes(b"w")


@pytest.mark.anyio
async def test_outputs_of_submitted_tasks_keep_their_dependency(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp"):
        train = Train(model=Model())
        trained = await train.submit()
    loaded = roundtrip(trained)
    assert loaded.__identifier__ == trained.__identifier__
    assert loaded.__identifier__ != Trained(model=Model()).__identifier__
    task = roundtrip(train)
    assert task.weights == train.weights == train.__job__.path / "weights.bin"
    assert task.weights.read_bytes() == b"w"


# --- classes from scripts and other processes ---------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import enum, sys
    from pathlib import Path
    from legato import Config, Param, Meta, dumps, tag

    class Kind(enum.Enum):
        SMALL = 1

    class Settings(Config):
        kind: Param[Kind] = Kind.SMALL
        seed: Param[int] = 0
        note: Meta[str] = ""

    class Sweep(Config):
        settings: Param[Settings]
        lrs: Param[list[float]]

    def write(path):
        sweep = Sweep(settings=Settings(seed=tag(3), note="n"), lrs=[1, 0.1])
        Path(path).write_bytes(dumps(sweep))
        print(sweep.__identifier__)

    if __name__ == "__main__":
        write(sys.argv[1])
    """
)

LOAD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import legato

    try:
        sweep = legato.loads(Path(sys.argv[1]).read_bytes())
    except legato.DeserializationError as exc:
        print("DeserializationError", exc)
    else:
        print(sweep.__identifier__, type(sweep).__module__, sweep.settings.note,
              sweep.__tags__, sweep.settings.kind.name)
    """
)


def python(*args: str | Path, cwd: Path, path: Path | None = None) -> str:
    env = {**os.environ}
    env.pop("PYTHONPATH", None)
    if path is not None:
        env["PYTHONPATH"] = str(path)
    proc = subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_a_class_from_a_main_script_roundtrips_in_another_process(tmp_path: Path) -> None:
    script = tmp_path / "scripts" / "sweep_script.py"
    script.parent.mkdir()
    script.write_text(SCRIPT)
    params = tmp_path / "params.bin"
    identifier = python(script, params, cwd=tmp_path)
    (tmp_path / "elsewhere").mkdir()
    out = python("-c", LOAD, params, cwd=tmp_path / "elsewhere")
    assert out == f"{identifier} sweep_script n {{'seed': 3}} SMALL"


def write_with_module(tmp_path: Path, name: str) -> Path:
    """Params of classes from an imported module `name` (not a `__main__` script)."""
    (tmp_path / f"{name}.py").write_text(SCRIPT)
    params = tmp_path / "params.bin"
    python(
        "-c", f"import sys, {name}; {name}.write(sys.argv[1])", params, cwd=tmp_path, path=tmp_path
    )
    return params


def test_an_unknown_module_raises_deserialization_error(tmp_path: Path) -> None:
    params = write_with_module(tmp_path, "legato_ghost_mod")
    with pytest.raises(DeserializationError, match="legato_ghost_mod"):
        loads(params.read_bytes())  # the module is not importable here


def test_a_deleted_script_raises_deserialization_error(tmp_path: Path) -> None:
    script = tmp_path / "gone_script.py"
    script.write_text(SCRIPT)
    params = tmp_path / "params.bin"
    python(script, params, cwd=tmp_path)
    script.unlink()
    out = python("-c", LOAD, params, cwd=tmp_path)
    assert out.startswith("DeserializationError") and "gone_script" in out


def test_a_removed_class_or_field_raises_deserialization_error(tmp_path: Path) -> None:
    params = write_with_module(tmp_path, "legato_changing_mod")
    module = tmp_path / "legato_changing_mod.py"
    module.write_text(SCRIPT.replace("lrs: Param[list[float]]", "rates: Param[list[float]]"))
    out = python("-c", LOAD, params, cwd=tmp_path, path=tmp_path)
    assert out.startswith("DeserializationError") and "Sweep" in out and "lrs" in out
    module.write_text(SCRIPT.replace("class Sweep", "class Renamed"))
    out = python("-c", LOAD, params, cwd=tmp_path, path=tmp_path)
    assert out.startswith("DeserializationError") and "Sweep" in out


# --- corrupt input ------------------------------------------------------------------------


def test_deserialization_error_is_a_legato_value_error() -> None:
    assert issubclass(DeserializationError, legato.LegatoError)
    assert issubclass(DeserializationError, ValueError)


def corrupt_inputs() -> list[bytes]:
    good = dumps(Everything(model=Model(), color=Color.GREEN))
    doc = msgspec.msgpack.decode(good)
    bad_root = {**doc, "root": 99}
    bad_version = {**doc, "version": 999}
    bad_tag = {**doc, "objects": [{**doc["objects"][0], "fields": {"big": ["?", 1]}}]}
    bad_enum = msgspec.msgpack.encode(doc).replace(b"GREEN", b"BLACK")
    encode = msgspec.msgpack.encode
    return [
        b"",
        b"not msgpack at all",
        good[: len(good) // 2],
        encode([1, 2, 3]),
        encode({"version": 1}),
        encode(bad_root),
        encode(bad_version),
        encode(bad_tag),
        bad_enum,
        encode({"version": 1, "root": 0, "objects": [{"module": "json", "qualname": "dumps"}]}),
    ]


@pytest.mark.parametrize("data", corrupt_inputs())
def test_corrupt_input_raises_deserialization_error(data: bytes) -> None:
    with pytest.raises(DeserializationError):
        loads(data)
