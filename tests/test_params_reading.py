"""The command line reads params files as `legato.loads` and the configuration core do.

`legato jobs show` and `jobs ls --tag` read params files without importing the user's
classes (`legato._inspect._params`); both readings go through one decoder. Random
configurations check that the tags and dependencies the command line reads are those the
core computes, and chains of three times the recursion limit that nothing recurses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import legato
from legato import Config, Param, Task, tag
from legato._core._graph import collect_tags, dependencies, to_builtins
from legato._inspect._params import Params
from support.cli import cli

WORKDIR = Path("/params-reading/wd")


class Leaf(Config, name="reading.Leaf"):
    x: Param[int] = 0
    label: Param[str] = ""


class Node(Config, name="reading.Node"):
    x: Param[int] = 0
    held: Param[Any] = None


class Step(Task, name="reading.Step"):
    x: Param[int] = 0
    held: Param[Any] = None

    def execute(self) -> None:
        pass


def submitted(task: Step) -> Step:
    """`task` marked as submit() marks it: a job, and the directory named after it."""
    path = WORKDIR / "jobs" / "reading.Step" / task.__identifier__
    task.__dict__["__legato_job__"] = True
    task.__dict__["__legato_taskdir__"] = path
    return task


def output_of(task: Step, value: Leaf) -> Leaf:
    """`value` as the output of the submitted `task` (what `config()` outputs record)."""
    value.__dict__["__legato_producer__"] = submitted(task)
    return value


ints = st.integers(-5, 5)
maybe_tagged = ints | ints.map(tag)
leaves = st.builds(Leaf, x=maybe_tagged, label=st.text("ab", max_size=2).map(tag) | st.just(""))


def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text("kl", max_size=2), children, max_size=3)
        | st.builds(Node, x=maybe_tagged, held=children)
        | st.builds(Step, x=maybe_tagged, held=children)
        | st.builds(Step, x=maybe_tagged, held=children).map(submitted)
        | st.builds(output_of, st.builds(Step, x=ints, held=children), leaves)
    )


values = st.recursive(ints | leaves, extend, max_leaves=12)


def core_dependencies(config: Config) -> list[tuple[str, str]]:
    return [(type(t).__legato_plan__.type_name, t.__identifier__) for t in dependencies(config)]


# Random configurations often hold conflicting tags, which legato drops with a warning: the
# rule under test (the command line drops them too), not noise to show.
@pytest.mark.filterwarnings("ignore:.*dropped. the configurations it holds:UserWarning")
@settings(max_examples=300, deadline=None)
@given(x=maybe_tagged, held=values)
def test_command_line_reads_tags_and_dependencies_as_the_core_computes_them(
    x: int, held: Any
) -> None:
    root = Node(x=x, held=held)
    params = Params(legato.dumps(root))
    assert params.tags() == {k: to_builtins(v) for k, v in collect_tags(root).items()}
    assert params.dependencies() == core_dependencies(root)


def chain(n: int) -> Step:
    """n tasks, each holding the one before (and tagged with its rank)."""
    step = submitted(Step(x=tag(0)))
    for i in range(1, n):
        step = submitted(Step(x=tag(i), held=step))
    return step


def test_chains_of_three_times_the_recursion_limit_read_without_recursing() -> None:
    n = 3 * sys.getrecursionlimit()
    last = Step(held=chain(n))
    params = Params(legato.dumps(last))
    assert params.tags() == collect_tags(last) == {"x": n - 1}
    assert params.dependencies() == core_dependencies(last)
    held = params.fields()["held"]
    assert params.render(held).count("Step(") == n
    depth, value = 0, params.builtins(held)
    while value is not None:
        depth, value = depth + 1, value["held"]
    assert depth == n


def test_a_params_file_whose_values_hold_themselves_is_an_error() -> None:
    data = legato.dumps(Node(held=Leaf()))
    doc = legato._core._serialize.msgspec.msgpack.decode(data)  # type: ignore[attr-defined]
    doc["objects"][1] = {"type": "reading.Node", "fields": {"held": ["C", 1]}}
    params = Params(legato._core._serialize.msgspec.msgpack.encode(doc))  # type: ignore[attr-defined]
    try:
        params.render(params.fields()["held"])
    except legato._inspect._params.ParamsError as exc:
        assert "holds itself" in str(exc)
    else:
        raise AssertionError("a value holding itself was rendered")


def test_jobs_show_on_the_last_job_of_a_chain_of_1000(tmp_path: Path) -> None:
    """`jobs show` used to fail past 100 tasks ("values nested too deeply")."""
    workdir = tmp_path / "wd"
    token = legato._core._identity.current_workdir.set(workdir)
    try:
        last = submitted(Step(x=tag(999), held=chain(999)))
        data = legato.dumps(last)
    finally:
        legato._core._identity.current_workdir.reset(token)
    job = workdir / "jobs" / "reading.Step" / last.__identifier__
    job.mkdir(parents=True)
    (job / "params.msgpack").write_bytes(data)
    done = cli("jobs", "show", last.__identifier__[:12], "--json", workdir=workdir)
    assert done.returncode == 0, done.stderr
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # json's decoder recurses, as msgspec's encoder would
    try:
        shown = json.loads(done.stdout)
    finally:
        sys.setrecursionlimit(limit)
    assert shown["tags"] == {"x": 999}
    assert len(shown["dependencies"]) == 1
    text = cli("jobs", "show", last.__identifier__[:12], workdir=workdir)
    assert text.returncode == 0, text.stderr
    assert text.stdout.count("Step(") == 999
