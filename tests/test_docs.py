"""The configuration reference cannot drift from the code's own key table."""

from __future__ import annotations

from pathlib import Path

from wgtrack.config import KEYS

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_key_is_documented() -> None:
    text = DOC.read_text()
    missing = [key.name for key in KEYS if f"| `{key.name}` |" not in text]
    assert missing == []
