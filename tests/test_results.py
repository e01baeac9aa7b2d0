"""Results: what `execute()` returns, stored with the done marker and read back by
`job.result()`, `legato.load_result()`, `legato.results()` and `legato jobs ls --csv`."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
from pathlib import Path

import pytest

import legato
from legato import JobFailed, JobState, ResultError, experiment, tag
from legato._jobdir._layout import DONE, RESULT
from support.results_tasks import AsyncEvaluate, Colour, Evaluate, Model, Summary

pytestmark = pytest.mark.anyio


async def test_result_of_sync_and_async_execute(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp") as xp:
        ev = await Evaluate(lr=0.01).submit()
        aev = await AsyncEvaluate(lr=0.5).submit()
        none = await Evaluate(lr=0.02, kind="none").submit()
        assert await ev.__job__.result() == {
            "score": 1.0,
            "loss": {"train": 0.5, "valid": 0.25},
            "epochs": 3,
        }
        assert await aev.__job__.result() == {"score": 1.0}
        assert await none.__job__.result() is None
    assert xp.counts()["done"] == 3
    marker = json.loads((ev.__job__.path / DONE).read_text())
    assert marker["result"] == RESULT
    assert "result" not in json.loads((none.__job__.path / DONE).read_text())
    assert not (none.__job__.path / RESULT).exists()
    assert legato.load_result(ev.__job__.path)["score"] == 1.0


async def test_result_of_a_job_done_in_an_earlier_run(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp"):
        await Evaluate(lr=0.01, kind="scalar").submit()
    async with experiment(tmp_path, "xp"):
        again = await Evaluate(lr=0.01, kind="scalar").submit()
        assert await again.__job__.result() == 1.0


async def test_rich_values_round_trip_and_survive_a_workdir_move(tmp_path: Path) -> None:
    old = tmp_path / "old"
    async with experiment(old, "xp"):
        ev = await Evaluate(lr=0.01, kind="rich").submit()
        struct = await Evaluate(lr=0.01, kind="struct").submit()
        numbers = await Evaluate(lr=0.01, kind="numpy-scalar").submit()
        value = await ev.__job__.result()
        assert await struct.__job__.result() == Summary(score=1.0, notes=["ok"])
        assert await numbers.__job__.result() == {"score": 1.0, "n": 3}
    assert value["weights"] == ev.weights
    assert value["model"] == Model(hidden=8)
    assert value["model"].__identifier__ == Model(hidden=8).__identifier__
    assert value["when"] == dt.date(2026, 1, 2)
    assert value["colour"] is Colour.RED
    assert value["shape"] == (2, 3)
    assert value["big"] == 2**70
    new = tmp_path / "new"
    shutil.move(old, new)
    moved = legato.load_result(new / ev.__job__.path.relative_to(old))
    assert moved["weights"] == new / ev.weights.relative_to(old)
    assert moved["weights"].read_bytes() == b"\0" * 10


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("object", ["object", "cannot hold"]),
        ("array", ["numpy.ndarray", "files"]),
        ("huge", ["MiB", "16 MiB", "file"]),
    ],
)
async def test_a_value_that_cannot_be_stored_fails_the_job(
    tmp_path: Path, kind: str, words: list[str]
) -> None:
    async with experiment(tmp_path, "xp", raise_on_failure=False):
        ev = await Evaluate(lr=0.01, kind=kind).submit()
        with pytest.raises(JobFailed) as info:
            await ev.__job__.result()
    job = ev.__job__
    assert job.state is JobState.FAILED
    assert job.failure_reason is not None and job.failure_reason.startswith("ResultError")
    for word in words:
        assert word in job.failure_reason
    assert "ResultError" in str(info.value)
    assert not (job.path / DONE).exists()
    assert not (job.path / RESULT).exists()
    with pytest.raises(ResultError, match="not DONE"):
        legato.load_result(job.path)


async def test_done_marker_commits_the_result(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp"):
        ev = await Evaluate(lr=0.01, kind="scalar").submit()
        none = await Evaluate(lr=0.03, kind="none").submit()
    path = ev.__job__.path
    # A result left by a run that died before its marker, or by an earlier run that
    # returned something where the last returned None, is never read.
    shutil.copy(path / RESULT, none.__job__.path / RESULT)
    assert legato.load_result(none.__job__.path) is None
    # A marker naming a result that was deleted by hand: an error that names the file.
    (path / RESULT).unlink()
    with pytest.raises(ResultError, match=r"result\.msgpack is missing"):
        legato.load_result(path)
    # A corrupt result file.
    (path / RESULT).write_bytes(b"\xc1garbage")
    with pytest.raises(ResultError, match="corrupt"):
        legato.load_result(path)


def test_load_result_of_a_directory_that_is_no_job(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match="not DONE"):
        legato.load_result(tmp_path)


async def _sweep(workdir: Path) -> None:
    async with experiment(workdir, "sweep", raise_on_failure=False):
        for lr in (0.001, 0.01, 0.1):
            for seed in (0, 1):
                await Evaluate(lr=tag(lr), seed=tag(seed)).submit()
        await Evaluate(lr=tag(0.5), kind="scalar").submit()
        await Evaluate(lr=tag(0.7), kind="object").submit()
    async with experiment(workdir, "other"):
        await AsyncEvaluate(lr=0.25).submit()


async def test_results_of_a_workdir(tmp_path: Path) -> None:
    await _sweep(tmp_path)
    found = legato.results(tmp_path)
    assert len(found) == 8 and all(r.state == "done" for r in found)
    evaluated = legato.results(tmp_path, type=Evaluate)
    assert len(evaluated) == 7
    assert len(legato.results(tmp_path, type="Evaluate")) == 7
    assert len(legato.results(tmp_path, type="support.results_tasks.AsyncEvaluate")) == 1
    assert len(legato.results(tmp_path, experiment="other")) == 1
    assert len(legato.results(tmp_path, state=None)) == 9
    failed = legato.results(tmp_path, state="failed")
    assert [r.tags for r in failed] == [{"lr": 0.7}]
    assert failed[0].result is None and "ResultError" in (failed[0].reason or "")
    record = next(r for r in evaluated if r.tags == {"lr": 0.01, "seed": 1})
    assert record.result["score"] == pytest.approx(0.999)
    assert record.type == "support.results_tasks.Evaluate"
    assert record.path == tmp_path / "jobs" / record.type / record.identifier
    assert record.duration is not None and record.duration >= 0
    assert (record.config.lr, record.config.seed) == (0.01, 1)
    assert record.config.__identifier__ == record.identifier
    with pytest.raises(ValueError, match="not a job state"):
        legato.results(tmp_path, state="finished")
    with pytest.raises(legato.LegatoError, match="no experiment named"):
        legato.results(tmp_path, experiment="nope")
    with pytest.raises(legato.LegatoError, match="does not exist"):
        legato.results(tmp_path / "nowhere")


async def test_results_to_pandas(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    await _sweep(tmp_path)
    frame = legato.results(tmp_path, type=Evaluate).to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [
        "type",
        "id",
        "state",
        "lr",
        "seed",
        "score",
        "loss.train",
        "loss.valid",
        "epochs",
        "result",
        "duration",
        "path",
    ]
    assert len(frame) == 7
    table = frame.pivot_table(index="lr", columns="seed", values="score")
    assert table.loc[0.01, 1] == pytest.approx(0.999)
    assert frame.loc[frame["lr"] == 0.5, "result"].item() == pytest.approx(-3.9)


def test_to_pandas_without_pandas_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        legato.results(tmp_path).to_pandas()


async def test_jobs_ls_csv_has_the_same_columns(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    await _sweep(tmp_path)
    from support.cli import cli

    out = cli("jobs", "ls", "--csv", "--state", "done", "--name", "Evaluate", workdir=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    frame = legato.results(tmp_path, type=Evaluate).to_pandas()
    assert rows[0] == list(frame.columns)
    assert len(rows) == 8
    by_id = {row[1]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    for _, expected in frame.iterrows():
        row = by_id[expected["id"]]
        assert float(row["lr"]) == expected["lr"]
        if row["score"]:
            assert float(row["score"]) == pytest.approx(expected["score"])
        assert row["path"] == expected["path"]
    # every job, failed ones too, with empty result cells
    out = cli("jobs", "ls", "--csv", workdir=tmp_path)
    assert out.returncode == 0, out.stderr
    everything = list(csv.reader(io.StringIO(out.stdout)))
    assert len(everything) == 10
    failed = next(r for r in everything[1:] if r[2] == "failed")
    assert failed[everything[0].index("score")] == ""
    assert Path(failed[-1]).name == failed[1]


async def test_jobs_ls_csv_imports_no_user_code(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp"):
        await Evaluate(lr=tag(0.01), kind="rich").submit()
        await Evaluate(lr=tag(0.02), kind="struct").submit()
    from support.cli import cli

    # The command's interpreter cannot import results_tasks (tests/ is not on its path):
    # configurations and Structs come out as JSON objects, enums as their names.
    out = cli("jobs", "ls", "--csv", workdir=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    rich = next(r for r in rows if r["lr"] == "0.01")
    assert json.loads(rich["model"]) == {"__type__": "support.results_tasks.Model", "hidden": 8}
    assert rich["colour"] == "Colour.RED"
    assert rich["weights"].endswith("weights.bin")
    assert json.loads(rich["shape"]) == [2, 3]
    struct = next(r for r in rows if r["lr"] == "0.02")
    assert float(struct["score"]) == pytest.approx(0.9)
    assert json.loads(struct["notes"]) == ["ok"]
