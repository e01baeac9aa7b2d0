"""Tasks whose `execute()` returns values, for the results tests (imported by job
processes through sys.path)."""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import Path
from typing import Annotated, Any

import msgspec

from legato import Config, Param, Task, pathgenerator


class Colour(enum.Enum):
    RED = "red"


class Summary(msgspec.Struct):
    score: float
    notes: list[str] = []


class Model(Config):
    hidden: Param[int]


class Evaluate(Task):
    """Returns a dict of scores; `kind` selects other return values."""

    lr: Param[float]
    seed: Param[int] = 0
    kind: Param[str] = "dict"
    weights: Annotated[Path, pathgenerator("weights.bin")]

    def execute(self) -> Any:
        score = round(1.0 - abs(self.lr - 0.01) * 10 - self.seed * 0.001, 6)
        if self.kind == "dict":
            return {"score": score, "loss": {"train": 0.5, "valid": 0.25}, "epochs": 3}
        if self.kind == "none":
            return None
        if self.kind == "scalar":
            return score
        if self.kind == "struct":
            return Summary(score=score, notes=["ok"])
        if self.kind == "rich":
            self.weights.write_bytes(b"\0" * 10)
            return {
                "weights": self.weights,
                "model": Model(hidden=8),
                "when": dt.date(2026, 1, 2),
                "colour": Colour.RED,
                "shape": (2, 3),
                "big": 2**70,
            }
        if self.kind == "numpy-scalar":
            import numpy as np

            return {"score": np.float64(score), "n": np.int64(3)}
        if self.kind == "array":
            import numpy as np

            return {"activations": np.zeros(3)}
        if self.kind == "object":
            return {"oops": object()}
        if self.kind == "huge":
            return "x" * (17 * 1024 * 1024)
        raise ValueError(f"unknown kind {self.kind}")


class AsyncEvaluate(Task):
    lr: Param[float]

    async def execute(self) -> Any:
        import asyncio

        await asyncio.sleep(0)
        return {"score": self.lr * 2}
