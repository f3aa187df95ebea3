"""The site's gate in front of every ClientApp process: run only pinned, verified bundles.

A SuperNode fetches whatever FAB the SuperLink names for a run and starts `flwr-clientapp`
for each message, which installs the FAB and imports the code it names. Checking inside the
ClientApp would be too late (a hostile bundle brings its own ClientApp), so the check sits
before the FAB is installed: the SuperNode's PATH starts with a folder holding our own
`flwr-clientapp` (warm.py's launcher), which runs Flower's ClientApp process, in a warm
child or cold, through `main()` here, with one change: when the runner is about to install
the FAB it pulled with the task, the FAB's SHA-256 is computed from its bytes and compared
with the hashes in INCISIVE_FL_ALLOWED_FABS, the bundles this site verified
(signing.verify_app) when it accepted the job. Any other FAB makes the task fail with an
error reply to the hub, before anything from it is written or imported.

This hooks one function of Flower's ClientApp runner (`install_from_fab`, the first step
that touches the FAB), so it is tied to the pinned flwr version; test_units checks the hook
still exists.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from flwr.supernode.runtime import run_clientapp as runner

ALLOWED_ENV = "INCISIVE_FL_ALLOWED_FABS"


class FabNotAllowed(RuntimeError):
    pass


def allowed_fabs() -> set[str]:
    return {h.strip().lower() for h in os.environ.get(ALLOWED_ENV, "").split(",") if h.strip()}


def _checked_install(original: Any) -> Any:
    def install_from_fab(fab_file: Any, *args: Any, **kwargs: Any) -> Any:
        content = fab_file if isinstance(fab_file, bytes) else Path(fab_file).read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        if digest not in allowed_fabs():
            raise FabNotAllowed(f"FAB {digest[:16]} is not an app this site accepted")
        return original(fab_file, *args, **kwargs)

    return install_from_fab


def main() -> None:
    from flwr.supernode.cli.flwr_clientapp import flwr_clientapp

    runner.install_from_fab = _checked_install(runner.install_from_fab)
    flwr_clientapp()


if __name__ == "__main__":
    main()
