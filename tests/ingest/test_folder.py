"""Folder import and the `incisive-node ingest` command."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from incisive_node.deid.keys import ProjectKeys, write_key_file
from incisive_node.ingest.cli import main as ingest_cli
from incisive_node.ingest.folder import import_folder
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.ingest.progress import ProgressBar
from incisive_node.store import Store
from tests.ingest import samples
from tests.ingest.test_pipeline import assert_no_canary


def _tree(root: Path) -> int:
    """A hospital-style export: nested folders, identifying file names, some bad files."""
    study = samples.new_study()
    for n in range(1, 4):
        folder = root / f"{samples.CANARY}_PATIENT" / "CT" / f"series{n % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{samples.PATIENT_ID}_{n}.dcm").write_bytes(samples.ct_file(study, n))
    junk = root / "junk"
    junk.mkdir()
    for name, data in samples.bad_inputs().items():
        (junk / name).write_bytes(data)
    (root / "top-level.dcm").write_bytes(samples.ct_file(study, 4))
    return 3 + len(samples.bad_inputs()) + 1


def test_every_file_is_stored_or_quarantined(
    pipeline: Pipeline, store: Store, tmp_path: Path
) -> None:
    total = _tree(tmp_path / "src")
    summary = import_folder(pipeline, tmp_path / "src", show_progress=False)
    assert summary.found == total
    assert summary.accounted_for
    assert sum(summary.stored.values()) == 4
    assert sum(summary.quarantined.values()) == len(samples.bad_inputs())
    assert store.index.counts().instances == 4
    assert_no_canary(store)
    assert samples.CANARY not in "\n".join(summary.lines())


def test_the_same_folder_twice_adds_nothing(
    pipeline: Pipeline, store: Store, tmp_path: Path
) -> None:
    _tree(tmp_path / "src")
    import_folder(pipeline, tmp_path / "src", show_progress=False)
    before = sorted(p for p in store.root.rglob("*") if p.is_file() and "index" not in p.name)
    again = import_folder(pipeline, tmp_path / "src", show_progress=False)
    after = sorted(p for p in store.root.rglob("*") if p.is_file() and "index" not in p.name)
    assert before == after
    assert set(again.stored) == {"duplicate"}


def test_an_unreadable_file_is_reported_not_hidden(pipeline: Pipeline, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "gone.dcm").symlink_to(tmp_path / "nowhere")  # unreadable even for root
    summary = import_folder(pipeline, src, show_progress=False)
    assert summary.unreadable == 1 and not summary.accounted_for


def test_progress_bar_draws_on_a_terminal_only() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Tty(), io.StringIO()
    for stream in (terminal, pipe):
        bar = ProgressBar(2, "ingest", stream)
        bar.advance()
        bar.advance()
        bar.close()
    assert "2/2" in terminal.getvalue()
    assert pipe.getvalue() == ""


def test_ingest_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    total = _tree(tmp_path / "src")
    key_file = tmp_path / "project.key"
    write_key_file(ProjectKeys.generate("ingest-cli"), key_file)
    code = ingest_cli(
        ["ingest", str(tmp_path / "src"), "--store", str(tmp_path / "store"),
         "--key-file", str(key_file)]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert f"files found:   {total}" in out
    assert "LOCAL KEY FILE" in err
    assert samples.CANARY not in out + err
    with Store(tmp_path / "store") as store:
        assert store.index.counts().instances == 4
        assert_no_canary(store)


def test_ingest_command_needs_keys(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(SystemExit, match="--vault-addr"):
        ingest_cli(["ingest", str(tmp_path / "src"), "--store", str(tmp_path / "store")])
