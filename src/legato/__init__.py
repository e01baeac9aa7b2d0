"""legato: an asyncio-native task graph for Python experiments."""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

from ._core._config import Config
from ._core._defaults import DefaultChanged, DefaultChangedWarning
from ._core._fields import Constant, Meta, Option, Param, SubParam, field, pathgenerator, tag
from ._core._identity import ENCODING_VERSION
from ._core._serialize import dumps, loads
from ._core._task import Task
from ._errors import (
    ConfigError,
    DeserializationError,
    Interrupted,
    LauncherError,
    LegatoError,
    NoExperimentError,
    Requeue,
    ResourceError,
    ResultError,
    ShippingError,
    ValidationError,
    WorkdirError,
)

if TYPE_CHECKING:
    from ._cache import cache
    from ._core._result import load_result
    from ._inspect._results import JobRecord, Results, results
    from ._jobside._attempt import attempt, remaining_time
    from ._jobside._load import load
    from ._jobside._progress import progress
    from ._launchers._launcher import Exit, Launcher, LaunchSpec
    from ._launchers._local import LocalLauncher
    from ._launchers._slurm import SlurmLauncher
    from ._runtime._experiment import Experiment, ExperimentFailed, experiment
    from ._runtime._job import Job, JobFailed, JobState
    from ._runtime._notebook import open_experiment

# Heavier parts load on first use, so a job's process (which imports legato) starts fast.
_LAZY = {
    "attempt": "_jobside._attempt",
    "remaining_time": "_jobside._attempt",
    "cache": "_cache",
    "Experiment": "_runtime._experiment",
    "ExperimentFailed": "_runtime._experiment",
    "experiment": "_runtime._experiment",
    "Job": "_runtime._job",
    "JobFailed": "_runtime._job",
    "JobState": "_runtime._job",
    "Exit": "_launchers._launcher",
    "LaunchSpec": "_launchers._launcher",
    "Launcher": "_launchers._launcher",
    "load": "_jobside._load",
    "load_result": "_core._result",
    "JobRecord": "_inspect._results",
    "Results": "_inspect._results",
    "results": "_inspect._results",
    "LocalLauncher": "_launchers._local",
    "open_experiment": "_runtime._notebook",
    "progress": "_jobside._progress",
    "SlurmLauncher": "_launchers._slurm",
}


def _public(value: Any) -> Any:
    """Name an exported class or function after the package, as anyio, httpx and trio do:
    tracebacks and reprs then say `legato.ValidationError`, the name users import, not the
    private module it happens to live in."""
    if isinstance(value, type) or inspect.isfunction(value):
        value.__module__ = "legato"
    return value


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'legato' has no attribute {name!r}")
    value = _public(getattr(importlib.import_module(f"legato.{module}"), name))
    globals()[name] = value
    return value


__version__ = "0.1.0"


__all__ = [
    "ENCODING_VERSION",
    "Config",
    "Exit",
    "Experiment",
    "Job",
    "JobRecord",
    "JobState",
    "LaunchSpec",
    "Launcher",
    "LocalLauncher",
    "ConfigError",
    "Constant",
    "DefaultChanged",
    "DefaultChangedWarning",
    "DeserializationError",
    "ExperimentFailed",
    "Interrupted",
    "JobFailed",
    "LauncherError",
    "LegatoError",
    "Meta",
    "NoExperimentError",
    "Option",
    "Param",
    "Requeue",
    "ResourceError",
    "ResultError",
    "Results",
    "ShippingError",
    "SlurmLauncher",
    "SubParam",
    "Task",
    "ValidationError",
    "WorkdirError",
    "__version__",
    "attempt",
    "cache",
    "dumps",
    "experiment",
    "field",
    "load",
    "load_result",
    "loads",
    "open_experiment",
    "pathgenerator",
    "progress",
    "results",
    "remaining_time",
    "tag",
]

for _name in __all__:
    if _name not in _LAZY and not _name.startswith("_"):
        _public(globals()[_name])
del _name
