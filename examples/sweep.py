"""A small sweep: train six models (three sizes, two learning rates), evaluate each; the
evaluations of the largest size fail on purpose.

Run it twice: the second run skips every finished job and reruns only the failed ones.

    python examples/sweep.py [WORKDIR]
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Annotated

import anyio

from legato import Config, JobState, Meta, Param, Task, experiment, pathgenerator, progress, tag


class Model(Config):
    hidden: Param[int] = 64
    dropout: Param[float] = 0.1


class Trained(Config):
    """What later tasks receive from `Learn`: the model and where its weights are."""

    model: Param[Model]
    weights: Param[Path]


class Learn(Task):
    model: Param[Model]
    epochs: Param[int] = 5
    lr: Param[float] = 1e-3
    verbose: Meta[bool] = False
    weights: Annotated[Path, pathgenerator("weights.json")]

    def config(self) -> Trained:
        return Trained(model=self.model, weights=self.weights)

    def execute(self) -> None:
        loss = 1.0
        for epoch in range(self.epochs):
            loss *= 1 - self.lr * 100 * (1 - self.model.dropout)
            progress((epoch + 1) / self.epochs, f"epoch {epoch + 1}")
        self.weights.write_text(json.dumps({"hidden": self.model.hidden, "loss": loss}))
        print(f"trained {self.model.hidden} units, loss {loss:.4f}")


class Evaluate(Task):
    trained: Param[Trained]
    score: Annotated[Path, pathgenerator("score.txt")]

    def execute(self) -> None:
        weights = json.loads(self.trained.weights.read_text())
        if weights["hidden"] > 200:
            raise ValueError(f"{weights['hidden']} hidden units do not fit in memory")
        score = 1 - weights["loss"] + math.log(weights["hidden"]) / 100
        self.score.write_text(f"{score:.4f}\n")
        print(f"score {score:.4f} with tags {self.__tags__}")


async def main(workdir: str) -> None:
    async with experiment(workdir, "sweep", max_jobs=2, raise_on_failure=False) as xp:
        for hidden in (32, 128, 256):
            for lr in (1e-3, 3e-3):
                learn = Learn(model=Model(hidden=tag(hidden)), lr=tag(lr))
                trained = await learn.submit()
                await Evaluate(trained=trained).submit()

    for job in xp.jobs:
        line = f"{job.state.name:<18} {job.type_name:<16} {job.identifier[:10]} {job.tags}"
        if job.state is JobState.DONE and job.type_name.endswith("Evaluate"):
            line += f"  score={(job.path / 'score.txt').read_text().strip()}"
        elif job.state is not JobState.DONE:
            line += f"\n    {job.failure_reason} (see {job.stderr_path})"
        print(line)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else "runs")
