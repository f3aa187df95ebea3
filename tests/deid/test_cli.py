"""`incisive-node deidentify` and `reidentify`: a tree in, every input accounted for, output
names from pseudonymised UIDs, no canary in any output byte or path."""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import json
import pathlib
import subprocess
import sys

import pytest

from incisive_node import cli
from incisive_node.cli import main
from incisive_node.deid.keys import write_key_file

from . import corpus

BAD = {"empty": b"", "text": b"hello, not dicom\n" * 40}


def _tree(root: pathlib.Path) -> int:
    files = {
        f"{corpus.MARK}-Doe^John/ct-{i}.dcm": corpus.instance(series=1 + i % 2, number=i,
                                                               with_times=False)
        for i in range(1, 7)
    }
    files[f"{corpus.MARK}-Doe^John/us.dcm"] = corpus.instance(
        sop_class=corpus.US_MULTIFRAME, modality="US", pixels=corpus.burned_pixels())
    files["junk/empty.dcm"] = BAD["empty"]
    files["junk/readme.txt"] = BAD["text"]
    files["junk/cut.dcm"] = corpus.instance(number=99)[:-50]
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return len(files)


def test_deidentify_tree(tmp_path, keys, capsys) -> None:
    src, out, qdir = tmp_path / "in", tmp_path / "out", tmp_path / "q"
    total = _tree(src)
    key_file = tmp_path / "project.key"
    write_key_file(keys, key_file)
    code = main(["deidentify", str(src), str(out), "--quarantine", str(qdir),
                 "--key-file", str(key_file), "--workers", "2"])
    captured = capsys.readouterr()
    assert code == 0
    assert "local key file" in captured.err
    lines = dict(line.strip().split(": ") for line in captured.out.splitlines() if ": " in line)
    assert int(lines["in"]) == total
    assert int(lines["written"]) + int(lines["quarantined"]) == total
    assert int(lines["written"]) == 6
    assert lines["burned-in-risk"] == "1" and lines["empty-file"] == "1"
    assert lines["not-dicom"] == "1" and lines["truncated"] == "1"

    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) == 6
    for path in written:
        rel = path.relative_to(out)
        assert corpus.MARK not in str(rel) and "Doe" not in str(rel)
        patient, study, series, name = rel.parts
        assert patient.startswith("P") and len(patient) == 20
        assert study.startswith("2.25.") and series.startswith("2.25.") and name.endswith(".dcm")
        assert corpus.canaries_in(path.read_bytes()) == []
    assert len({p.parent for p in written}) == 2, "two series in one study"
    quarantined = [p for p in qdir.rglob("*") if p.is_file()]
    assert len(quarantined) == 4 and all(corpus.MARK not in str(p) for p in quarantined)


def test_same_key_same_tree(tmp_path, keys) -> None:
    src = tmp_path / "in"
    _tree(src)
    key_file = tmp_path / "k"
    write_key_file(keys, key_file)
    trees = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert main(["deidentify", str(src), str(out), "--quarantine", str(tmp_path / f"q{run}"),
                     "--key-file", str(key_file), "--workers", "1"]) == 0
        trees.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*.dcm")})
    assert trees[0] == trees[1]


def test_reidentify_cli(tmp_path, bao, keys, monkeypatch, capsys) -> None:
    from incisive_node.deid.keys import store_in_vault

    store_in_vault(bao.client(bao.root), keys)
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "a").mkdir(parents=True)
    (src / "a" / "x.dcm").write_bytes(corpus.instance())
    db, audit = tmp_path / "map.sqlite", tmp_path / "audit.jsonl"
    monkeypatch.setenv("VAULT_TOKEN", bao.deid_token)
    assert main(["deidentify", str(src), str(out), "--quarantine", str(tmp_path / "q"),
                 "--vault-addr", bao.addr, "--project", keys.project,
                 "--mapping-db", str(db), "--workers", "1"]) == 0
    patient = next(out.iterdir()).name
    capsys.readouterr()
    assert main(["reidentify", patient, "--mapping-db", str(db), "--vault-addr", bao.addr,
                 "--audit-log", str(audit)]) == 3
    assert "refused" in capsys.readouterr().err
    monkeypatch.setenv("VAULT_TOKEN", bao.reid_token)
    assert main(["reidentify", patient, "--mapping-db", str(db), "--vault-addr", bao.addr,
                 "--audit-log", str(audit)]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found[patient]["PatientID"] == corpus.MARK + "PID"
    outcomes = [json.loads(line)["outcome"] for line in audit.read_text().splitlines()]
    assert outcomes == ["refused", "granted"]


# -- start-up: subcommand modules are imported only when their command runs -----------------

HEAVY = ("pydicom", "pynetdicom", "numpy", "prometheus_client", "incisive_node.deid",
         "incisive_node.ingest", "incisive_node.store", "incisive_node.curation",
         "incisive_node.fhir", "incisive_node.consent", "incisive_node.dicomweb")


def _eager_parser() -> argparse.ArgumentParser:
    """The parser as it was built before lazy loading: every module registers its parsers."""
    parser = argparse.ArgumentParser(prog="incisive-node", description=cli.__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    for module, register, _ in cli.COMMANDS:
        getattr(importlib.import_module(module), register)(sub)
    return parser


def _help(parser: argparse.ArgumentParser, argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        parser.parse_args(argv)
    return out.getvalue()


def test_lazy_cli_has_the_same_surface() -> None:
    """`--help` lists every command with the help its module gives it, and each command
    (and a nested one) parses and helps exactly as when every module was imported."""
    eager = _eager_parser()
    assert _help(cli.build_parser(["--help"]), ["--help"]) == _help(eager, ["--help"])
    names = [name for _, _, commands in cli.COMMANDS for name, _ in commands]
    for argv in [[name, "--help"] for name in names] + [["fhir", "export", "--help"]]:
        assert _help(cli.build_parser(argv), argv) == _help(eager, argv), argv
    argv = ["deidentify", "a", "b", "--quarantine", "q", "--option", "clean-descriptors"]
    assert vars(cli.build_parser(argv).parse_args(argv)) == vars(eager.parse_args(argv))


def _imported_after(args: list[str]) -> list[str]:
    code = ("import contextlib, sys\nfrom incisive_node.cli import main\n"
            "with contextlib.suppress(SystemExit):\n    main(sys.argv[1:])\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=True, timeout=60)
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


def test_version_and_help_import_no_subcommand() -> None:
    assert _imported_after(["--version"]) == []
    assert _imported_after(["--help"]) == []
    assert _imported_after([]) == []  # no command: prints the help


def test_a_command_imports_only_its_own_module(tmp_path) -> None:
    loaded = _imported_after(["keygen", "--project", "p", "--key-file", str(tmp_path / "k")])
    assert "incisive_node.deid" in loaded
    assert not {"pynetdicom", "incisive_node.ingest", "incisive_node.fhir"} & set(loaded)
