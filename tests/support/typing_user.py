"""User code as a type checker sees it: `test_typing.py` runs `mypy --strict` on this module
and expects no error. Every way of declaring and building a configuration is here once.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

from legato import Config, Constant, Meta, Option, Param, Task, field, pathgenerator, tag


class Kind(enum.Enum):
    SMALL = "small"
    LARGE = "large"


class Model(Config, name="typing_user.Model"):
    hidden: Param[int] = 128
    dropout: Param[float] = 0.1
    kind: Param[Kind] = Kind.SMALL
    layers: Param[list[int]] = field(default_factory=list)
    scale: Param[float] = field(default=1.0, ignore_default=False)
    device: Meta[str] = "cpu"
    verbose: Option[bool] = False
    version: Constant[int] = 2
    name: Param[str]  # required, declared after fields with defaults


class Trained(Config, name="typing_user.Trained"):
    model: Param[Model]
    checkpoint: Param[Path]


class Learn(Task, name="typing_user.Learn"):
    model: Param[Model]
    epochs: Param[int] = 100
    lr: Param[float] = 1e-3
    checkpoint: Path = pathgenerator("model.pt")  # the spelling type checkers understand
    log: Path = pathgenerator(lambda task: f"log-{task.epochs}.txt")

    def config(self) -> Trained:
        return Trained(model=self.model, checkpoint=self.checkpoint)

    def execute(self) -> None:
        self.checkpoint.write_text(str(self.lr))


class FineTune(Learn, name="typing_user.FineTune"):
    base: Param[Trained]


class AnnotatedPath(Task, name="typing_user.AnnotatedPath"):
    """The `Annotated` spelling is a required argument to type checkers; it still runs."""

    out: Annotated[Path, pathgenerator("out.txt")]

    def execute(self) -> None:
        pass


def build() -> list[Config | Task]:
    model = Model(name="m", hidden=tag(256), layers=[1, 2], kind=Kind.LARGE)
    learn = Learn(model=model, epochs=10)
    trained = Trained(model=model, checkpoint=Path("runs/model.pt"))
    fine = FineTune(model=model, base=trained, lr=tag(1e-4))
    identifier: str = fine.__identifier__
    assert len(identifier) == 64
    epochs: int = fine.epochs
    checkpoint: Path = fine.checkpoint
    del epochs, checkpoint
    return [model, learn, trained, fine]
