"""The toolchain is cached by version, and a bad environment gets one clear message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from incisive_operator.testbed import TestbedError, Toolchain, toolchain, versions

KUBE_DIR = Path("kubernetes") / f"v{versions.KUBERNETES}"


def run_build(cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "INCISIVE_CACHE_DIR": str(cache), **env}
    return subprocess.run(
        [sys.executable, "-m", "incisive_operator.cli", "testbed", "build"],
        capture_output=True, text=True, env=full_env, timeout=300,
    )


def test_a_warm_cache_builds_nothing(tools: Toolchain) -> None:
    """The session already ensured the toolchain; ensuring again must not run Go at all."""
    stamps = {p: p.stat().st_mtime_ns for p in (tools.kube_apiserver, tools.kwok, tools.helm)}
    said: list[str] = []
    again = toolchain.ensure(progress=said.append)
    assert again == tools
    assert not [line for line in said if "building" in line]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    version = subprocess.run([str(tools.kube_apiserver), "--version"], capture_output=True,
                             text=True, check=True)
    assert version.stdout.strip() == f"Kubernetes v{versions.KUBERNETES}"


def test_missing_go_is_named_with_the_fix(tmp_path: Path) -> None:
    # Leftovers of an interrupted build are not trusted: they go before anything else.
    leftover = tmp_path / KUBE_DIR / "bin" / "kube-apiserver"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("half a binary")
    no_go_path = os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "go").exists()
    )
    result = run_build(tmp_path, PATH=no_go_path)
    assert result.returncode == 2
    assert "`go` is not on PATH" in result.stderr
    assert "install Go >=" in result.stderr
    assert not leftover.exists()


@pytest.mark.skipif(shutil.which("go") is None, reason="needs go to reach the proxy")
def test_failed_module_download_is_named_with_the_fix(tmp_path: Path) -> None:
    result = run_build(tmp_path, GOPROXY="http://127.0.0.1:9", GONOSUMDB="*", GOFLAGS="")
    assert result.returncode == 2, result.stderr
    assert "downloading the Go module k8s.io/kubernetes" in result.stderr
    assert "GOPROXY" in result.stderr
    assert "Traceback" not in result.stderr


def test_too_little_disk_is_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**10, 10**10 - 10**8, 10**8))
    with pytest.raises(TestbedError) as failure:
        toolchain._check_disk(tmp_path)
    assert "0.1 GiB free" in failure.value.problem
    assert "INCISIVE_CACHE_DIR" in failure.value.fix


def test_a_damaged_cache_is_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / KUBE_DIR / "bin"
    bin_dir.mkdir(parents=True)
    recorded = {}
    for command in toolchain.KUBE_COMMANDS:
        (bin_dir / command).write_text("#!/bin/sh\n")
        (bin_dir / command).chmod(0o755)
        recorded[command] = {"size": 10}
    (bin_dir.parent / "manifest.json").write_text(json.dumps({"binaries": recorded}))
    (bin_dir / "kube-scheduler").write_text("#!/bin/sh\necho replaced\n")
    monkeypatch.setenv("INCISIVE_CACHE_DIR", str(tmp_path))
    with pytest.raises(TestbedError) as failure:
        toolchain.ensure(progress=lambda _: None)
    assert "stale or damaged" in failure.value.problem
    assert "kube-scheduler" in failure.value.problem
    assert "incisive testbed build --rebuild" in failure.value.fix
