"""Atomic writes: final mode, no temp file left, old file kept when the write fails."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from wgtrack.atomic import write_atomic


def test_writes_with_mode_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.lp"
    write_atomic(target, b"one\n", 0o640)
    write_atomic(target, b"two\n", 0o640)
    assert target.read_bytes() == b"two\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["out.lp"]


def test_failure_keeps_old_file_and_removes_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.lp"
    write_atomic(target, b"old\n")

    with pytest.raises(TypeError):
        write_atomic(target, None, 0o644)  # type: ignore[arg-type]  # fails mid-write
    assert target.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["out.lp"]


def test_rename_failure_removes_temp(tmp_path: Path) -> None:
    target = tmp_path / "adir"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(OSError):
        write_atomic(target, b"data")  # cannot replace a non-empty directory
    assert sorted(os.listdir(tmp_path)) == ["adir"]


def test_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "out.lp", b"x")


def test_pieces_are_written_in_order_as_one_file(tmp_path: Path) -> None:
    """A hub's line-protocol file goes as its pieces (no joined copy of its megabytes)."""
    target = tmp_path / "out.lp"
    write_atomic(target, [b"wireguard_peer a=1 1\n", b"", b"wireguard_peer b=2 1\n"], 0o640, durable=False)
    assert target.read_bytes() == b"wireguard_peer a=1 1\nwireguard_peer b=2 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and os.listdir(tmp_path) == ["out.lp"]
