"""Warm app processes: torch and the app imported once, one fork per Flower task.

Flower's SuperExec starts a fresh `flwr-clientapp` (at a site, for every message) or
`flwr-serverapp` (at the hub, for every run), and each one imports torch, Flower and the
app before it does any work: about 4 s on this machine, longer than a whole round of a
small model's training. Here a *warm server*, started in the same session as its SuperNode
or SuperLink, imports all that once and forks a child per task. The `flwr-clientapp` /
`flwr-serverapp` first on the SuperExec's PATH is a small launcher (`write_launcher`): it
hands its arguments, environment, working folder and standard streams to the warm server
over a Unix socket, waits, and exits with the child's status. Signals it receives are passed
on to the child.

What the child runs is what the cold process would run (for ClientApps, the guard's runner,
so the FAB check is unchanged); each task still reads its data, and so asks for consent,
afresh. A child reseeds numpy's and torch's global generators: forked children would
otherwise share the parent's state, and with it, the "random" noise of local DP.

The socket is a file in the process's state folder, created 0600: only the operator's own
user can hand it work, and that user could start the cold runner anyway. When no warm
server answers (not started, still importing and gone, crashed), the launcher runs the task
cold, in its own process, as Flower would have.

    python -m incisive_node.fl.warm --role clientapp --socket S -- flower-supernode ...

starts the warm server and then becomes (execs) the command, so the server's parent is the
SuperNode or SuperLink itself: the server leaves when its parent does, and stopping the
session stops the server and any task it forked.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

ROLES = ("clientapp", "serverapp")
SOCKET_NAME = "warm.sock"
_MAX_FDS = 3  # stdin, stdout, stderr
REQUEST_TIMEOUT_S = 10.0


def _clientapp() -> None:
    from incisive_node.fl import guard, pacing

    pacing.quick_object_pulls()
    guard.main()


def _serverapp() -> None:
    from flwr.superlink.cli import flwr_serverapp

    from incisive_node.fl import pacing

    pacing.quick_object_pulls()
    flwr_serverapp()


_ENTRY: dict[str, Callable[[], None]] = {"clientapp": _clientapp, "serverapp": _serverapp}


# What every task of a role imports: the reason the server exists.
_PRELOAD = {
    "clientapp": ("torch", "flwr.supernode.cli.flwr_clientapp", "incisive_node.fl.guard",
                  "incisive_node.fl.client_app"),
    "serverapp": ("torch", "flwr.superlink.cli", "incisive_node.fl.server_app"),
}


def _preload(role: str) -> None:
    for module in _PRELOAD[role]:
        importlib.import_module(module)
    _exercise(role)


def _exercise(role: str) -> None:
    """Run the task's torch code once on a toy input. Much of what a task imports is only
    imported on first use: the optimiser's first step pulls in torch._dynamo, sympy and
    triton (about 900 modules, 2 s of a task's life), and saving a model torch's serialiser.
    Done here, once, every forked child starts with them loaded."""
    import io

    import httpcore  # noqa: F401  httpx's transport, imported at a task's first request
    import numpy
    import torch

    from incisive_node.fl.config import TrainingConfig
    from incisive_node.fl.model import build_model, evaluate, train

    threads = torch.get_num_threads()
    # One thread: an OpenMP pool started before fork() is not usable in the children.
    torch.set_num_threads(1)
    try:
        model = build_model(TrainingConfig(image_size=8, width=2, hidden=4))
        if role == "clientapp":
            images = numpy.zeros((2, 1, 8, 8), dtype=numpy.float32)
            labels = numpy.zeros(2, dtype=numpy.int64)
            train(model, images, labels, TrainingConfig(local_epochs=1, batch_size=2))
            evaluate(model, images, labels)
        torch.save(model.state_dict(), io.BytesIO())
    finally:
        torch.set_num_threads(threads)


def _exit_code(error: SystemExit) -> int:
    if error.code is None:
        return 0
    if isinstance(error.code, int):
        return error.code
    print(error.code, file=sys.stderr)
    return 1


def _run_child(role: str, request: dict, fds: list[int], inherited: list[int]) -> None:
    """In the forked child: become the task's process, run it, never return."""
    code = 1
    try:
        for fd in inherited:
            with contextlib.suppress(OSError):
                os.close(fd)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = list(request["argv"])
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        _reseed()
        try:
            _ENTRY[role]()
            code = 0
        except SystemExit as error:
            code = _exit_code(error)
    except BaseException:  # a child must never fall back into the server loop
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _reseed() -> None:
    import numpy
    import torch

    numpy.random.seed()
    torch.seed()


def _read_request(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, _MAX_FDS)
    try:
        chunks = [data]
        while chunk := conn.recv(1 << 16):
            chunks.append(chunk)
        return json.loads(b"".join(chunks)), fds
    except BaseException:
        for fd in fds:  # the streams of a request we cannot serve are not ours to keep
            os.close(fd)
        raise


def serve(role: str, socket_path: Path) -> None:
    """Bind, import the role's modules, then fork a child per request until the parent goes."""
    parent = os.getppid()
    # Bind first (relative to the folder: socket paths are limited to 108 bytes), import
    # after: a launcher that connects meanwhile waits in the backlog instead of going cold.
    os.chdir(socket_path.parent)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path.name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)
    try:
        listener.bind(socket_path.name)
    finally:
        os.umask(umask)
    listener.listen(64)
    _preload(role)
    sys.stdout.flush()
    sys.stderr.flush()

    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    running: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, launcher connection)
    try:
        while os.getppid() == parent:
            for key, _ in selector.select(timeout=1.0):
                if key.data is None:
                    _accept(role, listener, selector, running)
                else:
                    _reap(key.fd, selector, running)
    finally:
        for pid, conn in running.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            conn.close()
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path.name)


def _accept(role: str, listener: socket.socket, selector: selectors.DefaultSelector,
            running: dict[int, tuple[int, socket.socket]]) -> None:
    conn, _ = listener.accept()
    # The server is one thread: a launcher that never finishes its request must not stall
    # every other task behind it.
    conn.settimeout(REQUEST_TIMEOUT_S)
    try:
        request, fds = _read_request(conn)
        conn.settimeout(None)
    except (OSError, ValueError) as error:
        print(f"warm {role}: unreadable request: {error}", file=sys.stderr, flush=True)
        conn.close()
        return
    if len(fds) != _MAX_FDS:
        print(f"warm {role}: request without its 3 streams", file=sys.stderr, flush=True)
        for fd in fds:
            os.close(fd)
        conn.close()
        return
    inherited = [selector.fileno(), listener.fileno(), conn.fileno(), *running,
                 *(c.fileno() for _, c in running.values())]
    pid = os.fork()
    if pid == 0:
        _run_child(role, request, fds, inherited)
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    running[pidfd] = (pid, conn)
    selector.register(pidfd, selectors.EVENT_READ, pid)
    with contextlib.suppress(OSError):
        conn.sendall(f"pid {pid}\n".encode())


def _reap(pidfd: int, selector: selectors.BaseSelector,
          running: dict[int, tuple[int, socket.socket]]) -> None:
    pid, conn = running.pop(pidfd)
    selector.unregister(pidfd)
    os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    with contextlib.suppress(OSError):
        conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
    conn.close()


def launch(role: str, socket_path: Path) -> int:
    """The launcher's body: run this task in a warm child, or cold when none answers."""
    cwd = os.getcwd()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.chdir(socket_path.parent)
        conn.connect(socket_path.name)
        request = {"argv": sys.argv, "env": dict(os.environ), "cwd": cwd}
        socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        conn.close()
        return _cold(role, cwd)
    finally:
        os.chdir(cwd)
    reader = conn.makefile("r")
    first = reader.readline().split()
    if first[:1] != ["pid"]:
        # The server went away before forking: nothing of this task ran yet.
        conn.close()
        return _cold(role, cwd)
    child = int(first[1])

    def forward(sig: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    last = reader.readline().split()
    conn.close()
    if last[:1] == ["exit"]:
        code = int(last[1])
        return code if code >= 0 else 128 - code
    print(f"warm {role}: the warm server went away while task {child} ran", file=sys.stderr)
    return 1


def _cold(role: str, cwd: str) -> int:
    print(f"warm {role}: no warm server answered; running this task cold", file=sys.stderr,
          flush=True)
    os.chdir(cwd)
    try:
        _ENTRY[role]()
    except SystemExit as error:
        return _exit_code(error)
    return 0


def write_launcher(folder: Path, role: str, socket_path: Path) -> Path:
    """Write `folder/flwr-<role>`, the launcher the SuperExec finds first on its PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    launcher = folder / f"flwr-{role}"
    launcher.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "from pathlib import Path\n"
        "from incisive_node.fl.warm import launch\n"
        f"sys.exit(launch({role!r}, Path({str(socket_path)!r})))\n"
    )
    launcher.chmod(0o755)
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m incisive_node.fl.warm", description=(
        "Start a warm server for Flower app tasks, then exec COMMAND (its parent)."))
    parser.add_argument("--role", choices=ROLES, required=True)
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a command to exec is required after --")
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() == 0:
        try:
            serve(args.role, args.socket.absolute())
        except BaseException:  # the command runs on; its tasks go cold
            traceback.print_exc()
        finally:
            os._exit(0)
    os.execvp(command[0], command)  # noqa: S606 - the caller's argv, as exec's wrapper


if __name__ == "__main__":
    main()
