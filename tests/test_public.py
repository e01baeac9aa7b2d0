"""The public face: what `legato` exports, and how it names it."""

from __future__ import annotations

import inspect
import pickle
import traceback

import pytest

import legato


@pytest.mark.parametrize("name", [n for n in legato.__all__ if not n.startswith("_")])
def test_exported_classes_and_functions_are_named_after_the_package(name: str) -> None:
    value = getattr(legato, name)
    if isinstance(value, type) or inspect.isfunction(value):
        assert value.__module__ == "legato"
        assert getattr(legato, value.__qualname__) is value


def test_a_traceback_names_the_error_as_users_import_it() -> None:
    try:
        raise legato.ValidationError("Fit.layers", "a list of int", "x", "not a list")
    except legato.ValidationError:
        text = traceback.format_exc()
    assert "\nlegato.ValidationError: " in text
    assert "legato._errors" not in text


def test_errors_still_pickle_by_their_public_name() -> None:
    error = legato.ConfigError("Fit: bad")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is legato.ConfigError and str(again) == "Fit: bad"


def test_tracebacks_show_the_lines_of_generated_code() -> None:
    """A configuration's check and digest are generated per class; a traceback through
    them names the class and shows the line, as it would for written code."""

    class Traced(legato.Config, name="public.Traced"):
        n: legato.Param[int] = 0

    with pytest.raises(legato.ValidationError) as caught:
        Traced(n="x")  # type: ignore[arg-type]
    text = "".join(traceback.format_exception(caught.value))
    assert 'File "<legato check of public.Traced>", line ' in text
    assert "check_field(self" in text
    digest = type(Traced()).__legato_plan__.digest  # type: ignore[union-attr]
    source = inspect.getsource(digest)
    assert source.startswith("def digest(self, d):")
