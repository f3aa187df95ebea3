"""node_image/Dockerfile, without a container engine.

There is no docker or podman here, so the build stage is replayed on this machine: its
COPY steps copy from the repository (through .dockerignore) into a temporary root, its RUN
steps run in a shell with every absolute path in them moved under that root, and `python`
is this machine's Python 3.11 standing in for the base image's. The result is the virtual
environment the image would carry, and its entrypoints are smoke-tested. What this cannot
show: that the base image tag exists, and the runtime stage's user and file ownership
(checked statically below instead).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from .conftest import ROOT

DOCKERFILE = ROOT / "node_image" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
# pip's ways of saying it could not reach an index.
OFFLINE = re.compile(r"NewConnectionError|Temporary failure in name resolution|"
                     r"Network is unreachable|No matching distribution found|"
                     r"Failed to establish a new connection|ConnectTimeout")


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


def ignored(relative: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    verdict = False
    for raw in DOCKERIGNORE.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = {pattern, pattern.removeprefix("**/")}
        parts = relative.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatch(p, c) or (fnmatch.fnmatch(parts[-1], c.removeprefix("**/"))
               and c.startswith("**/")) for p in prefixes for c in candidates) \
                or pattern == "**":
            verdict = not negate
    return verdict


def test_static_shape() -> None:
    arguments = dict(rest.split("=", 1) for keyword, rest in instructions() if keyword == "ARG")
    base = arguments["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", base), base
    build, runtime = stages()
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE}")
    runtime_steps = dict(runtime)
    assert runtime_steps["USER"] == "10001:10001"
    assert json.loads(runtime_steps["ENTRYPOINT"]) == ["incisive-node"]
    assert "COPY --from=build /opt/incisive /opt/incisive" in [
        f"{k} {v}" for k, v in runtime]
    # Nothing fetched or compiled in the runtime stage: only the user is created there.
    assert [v for k, v in runtime if k == "RUN" and ("pip" in v or "apt-get" in v)] == []


def test_dockerignore_keeps_the_context_small() -> None:
    for kept in ("pyproject.toml", "README.md", "operator/incisive_operator/cli.py",
                 "node_image/incisive_node/cli.py"):
        assert not ignored(kept), kept
    for dropped in (".venv/bin/python", "tests/conftest.py", ".git/config", "crds/x.yaml",
                    "operator/incisive_operator/__pycache__/cli.cpython-311.pyc",
                    "incisive.egg-info/PKG-INFO"):
        assert ignored(dropped), dropped


def _rebase(command: str, root: Path) -> str:
    """Every absolute path in a RUN step, moved under the temporary root."""
    return re.sub(r"(?:(?<=^)|(?<=[\s\"'=]))/(?=[A-Za-z])", f"{root}/", command)


def test_build_stage_installs_working_entrypoints(tmp_path: Path) -> None:
    root = tmp_path / "image"
    stand_in = tmp_path / "base-bin"
    stand_in.mkdir()
    # The base image's `python`: this machine's interpreter, not the test venv's.
    base_python = Path(getattr(sys, "_base_executable", sys.executable))
    (stand_in / "python").symlink_to(base_python)
    env = {**os.environ, "PATH": f"{stand_in}:{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    workdir = root  # Docker's default working directory is /
    root.mkdir()
    build, _ = stages()
    for keyword, rest in build[1:]:
        if keyword == "ARG":
            key, _, value = rest.partition("=")
            env[key] = value.strip('"')
        elif keyword == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
            # The image keeps no pip cache; here the machine's cache saves downloading
            # every wheel again on each run. It changes where wheels come from, not which.
            env.pop("PIP_NO_CACHE_DIR", None)
        elif keyword == "WORKDIR":
            workdir = root / rest.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, target = shlex.split(rest)
            destination = workdir / target
            for source in sources:
                _copy(ROOT / source.rstrip("/"), destination, source)
        elif keyword == "RUN":
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", _rebase(rest, root)],
                                  cwd=workdir, env=env, capture_output=True, text=True,
                                  check=False, timeout=600)
            if done.returncode != 0 and OFFLINE.search(done.stdout + done.stderr):
                pytest.skip(f"no package index reachable: {done.stderr.strip()[-300:]}")
            assert done.returncode == 0, f"RUN {rest}\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
    bin_dir = root / "opt" / "incisive" / "bin"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL"))}
    node = subprocess.run([str(bin_dir / "incisive-node"), "--version"], capture_output=True,
                          text=True, check=True, env=clean, timeout=60)
    assert node.stdout.strip() == version
    for argv in (["--help"], ["operator", "run", "--help"]):
        shown = subprocess.run([str(bin_dir / "incisive"), *argv], capture_output=True,
                               text=True, check=True, env=clean, timeout=60)
        assert "usage: incisive" in shown.stdout
    # The packages came from the copied sources, not from this checkout's editable install.
    where = subprocess.run([str(bin_dir / "python"), "-c",
                            "import incisive_node, incisive_operator; "
                            "print(incisive_node.__file__); print(incisive_operator.__file__)"],
                           capture_output=True, text=True, check=True, env=clean, timeout=60)
    for line in where.stdout.split():
        assert Path(line).is_relative_to(root / "opt" / "incisive"), line


def _copy(source: Path, destination: Path, spelled: str) -> None:
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(ROOT).as_posix()
            if path.is_file() and not ignored(relative):
                target = destination / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
    else:
        assert not ignored(spelled), f"COPY {spelled} is excluded by .dockerignore"
        destination.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination / source.name)
