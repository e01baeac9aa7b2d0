"""legato: an asyncio-native task graph for Python experiments."""

from __future__ import annotations

from ._config import Config
from ._errors import (
    ConfigError,
    DeserializationError,
    ExperimentFailed,
    JobFailed,
    LegatoError,
    LockTimeout,
    NoExperimentError,
    ResourceError,
    ValidationError,
)
from ._fields import Constant, Meta, Option, Param, field, pathgenerator, tag
from ._identity import ENCODING_VERSION
from ._serialize import dumps, loads
from ._task import Task

__version__ = "0.1.0"

__all__ = [
    "ENCODING_VERSION",
    "Config",
    "ConfigError",
    "Constant",
    "DeserializationError",
    "ExperimentFailed",
    "JobFailed",
    "LegatoError",
    "LockTimeout",
    "Meta",
    "NoExperimentError",
    "Option",
    "Param",
    "ResourceError",
    "Task",
    "ValidationError",
    "__version__",
    "dumps",
    "field",
    "loads",
    "pathgenerator",
    "tag",
]
