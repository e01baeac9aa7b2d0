"""Type checking user code: `mypy --strict` accepts every valid way of declaring and building
configurations (`typing_user.py`) and reports the mistakes construction would raise on.

Skipped where mypy is not installed (it is in CI, which runs mypy on src/ too).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

TESTS = Path(__file__).parent

MISTAKES = """
from pathlib import Path
from support.typing_user import Learn, Model

Model()                                              # line 5: `name` is required
Model(name="m", hidden="wide")                       # line 6: wrong type
Model("m")                                           # line 7: keyword-only
Learn(model=Model(name="m"), checkpoint=Path("x"))   # line 8: a path generator
Model(name="m").hidden = 3                           # line 9: frozen
"""


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """One mypy run over both modules: error lines by file name."""
    tmp = tmp_path_factory.mktemp("typing")
    (tmp / "mistakes.py").write_text(MISTAKES)
    stdout, stderr, _ = api.run(
        [
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp / "cache"),
            str(TESTS / "support" / "typing_user.py"),
            str(tmp / "mistakes.py"),
        ]
    )
    assert not stderr, stderr
    errors: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        match = re.match(r"(.+?):(\d+): error: (.*)", line)
        if match:
            errors.setdefault(Path(match[1]).name, []).append(f"{match[2]}: {match[3]}")
    return errors


def test_valid_user_code_has_no_type_errors(mypy_output: dict[str, list[str]]) -> None:
    assert mypy_output.get("typing_user.py", []) == []


def test_mistakes_are_type_errors(mypy_output: dict[str, list[str]]) -> None:
    found = mypy_output.get("mistakes.py", [])
    expected = {
        5: 'Missing named argument "name"',
        6: 'Argument "hidden" to "Model" has incompatible type "str"',
        7: "Too many positional arguments",
        8: 'Unexpected keyword argument "checkpoint"',
        9: 'Property "hidden" defined in "Model" is read-only',
    }
    for line, message in expected.items():
        assert any(f.startswith(f"{line}: ") and message in f for f in found), (line, found)


def test_the_typed_user_code_runs() -> None:
    from support import typing_user

    _, learn, _, fine = typing_user.build()
    assert fine.__identifier__ != learn.__identifier__
    assert typing_user.Learn.__legato_plan__ is not None
    assert set(typing_user.Learn.__legato_plan__.pathgens) == {"checkpoint", "log"}
