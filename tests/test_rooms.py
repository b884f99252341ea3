"""Small rooms: no module over 400 lines and no function over 50 (``../shared/STYLE.md``), but
for the exceptions named here, each with why. A ratchet: an exception may not grow, and one
that no longer needs its place must leave the list."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "wgtrack"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50

# module (relative to wgtrack/) -> (lines it may have, why)
MODULE_EXCEPTIONS: dict[str, tuple[int, str]] = {}  # none today
# "module:function" -> (lines it may have, why)
FUNCTION_EXCEPTIONS: dict[str, tuple[int, str]] = {}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_a_module_holds_one_job(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    allowed, why = MODULE_EXCEPTIONS.get(_name(path), (MAX_MODULE_LINES, ""))
    assert lines <= allowed, f"{_name(path)}: {lines} lines (at most {allowed}{': ' + why if why else ''})"


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_a_function_holds_one_job(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            key = f"{_name(path)}:{node.name}"
            allowed, why = FUNCTION_EXCEPTIONS.get(key, (MAX_FUNCTION_LINES, ""))
            assert lines <= allowed, f"{key}: {lines} lines (at most {allowed}{': ' + why if why else ''})"


def test_every_exception_is_still_needed() -> None:
    """An exception whose module or function is back within the limit leaves the list."""
    for name, (allowed, _) in MODULE_EXCEPTIONS.items():
        lines = len((PACKAGE / name).read_text().splitlines())
        assert lines > MAX_MODULE_LINES, f"{name} is {lines} lines now: drop its exception"
        assert lines >= allowed - 20, f"{name} shrank to {lines} lines: lower its allowance ({allowed})"
    for key in FUNCTION_EXCEPTIONS:
        module, _, function = key.partition(":")
        tree = ast.parse((PACKAGE / module).read_text())
        sizes = [(n.end_lineno or n.lineno) - n.lineno + 1 for n in ast.walk(tree)
                 if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == function]
        assert sizes and max(sizes) > MAX_FUNCTION_LINES, f"{key} is within the limit now: drop its exception"
