"""The atomic writer: a file appears whole or not at all, and no temporary file stays."""

from pathlib import Path

import pytest

from unmixlab.files import atomic_path, link_latest, write_text
from unmixlab.model_io import model_folder


def test_write_text_replaces_the_file_and_leaves_nothing_else(tmp_path: Path):
    target = tmp_path / "sub" / "scores.md"
    write_text(target, "old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["scores.md"]


def test_a_failing_write_leaves_neither_target_nor_temporary_file(tmp_path: Path):
    target = tmp_path / "model.pth"
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_rewrite_keeps_the_earlier_content(tmp_path: Path):
    target = tmp_path / "separator.json"
    write_text(target, "{}")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text('{"half')
        raise KeyboardInterrupt
    assert target.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["separator.json"]


def test_latest_points_at_the_newest_run_and_names_its_model(tmp_path: Path):
    output = tmp_path / "runs" / "quickstart"
    for name in ("20260101-000000-first", "20260102-000000-second"):
        write_text(output / name / "model" / "separator.json", "{}")
        link_latest(output / name)
    assert (output / "latest").resolve() == (output / "20260102-000000-second").resolve()
    assert sorted(p.name for p in output.iterdir()) == [
        "20260101-000000-first",
        "20260102-000000-second",
        "latest",
    ]  # no temporary link left
    model = output / "latest" / "model"
    assert model_folder(output) == model
    assert (
        model_folder(output / "20260101-000000-first") == output / "20260101-000000-first" / "model"
    )
    assert model_folder(model) == model
    assert model_folder(tmp_path) == tmp_path  # nothing there: read_separator_json refuses it
