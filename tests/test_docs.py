"""The configuration reference cannot drift from the code's own key table."""

from __future__ import annotations

from pathlib import Path

from wgtrack.config import KEYS

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_key_is_documented() -> None:
    text = DOC.read_text()
    missing = [key.name for key in KEYS if f"| `{key.name}` |" not in text]
    assert missing == []


def test_generated_sections_are_up_to_date() -> None:
    from wgtrack.docgen import DOCS, render, sections

    for (name, marker), body in sections().items():
        text = (DOCS / name).read_text()
        assert render(text, marker, body) == text, f"run `python -m wgtrack.docgen` to refresh docs/{name}"
