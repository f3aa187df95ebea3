"""The operator's federated-learning settings (`incisive operator run --fl-...`).

Without `--fl-state-dir` an operator runs no Flower processes: a hub then gathers decisions
but starts no run, and a site answers work on its policy alone and never trains.

What a site trains on is the site's choice, never the hub's (`--fl-data`):

* `synthetic:I/N` - synthetic images with a learnable signal; site I of N gets a non-IID
  share (label skew by site index), `--fl-samples` images. For tests and the demo.
* `store:DIR` - the appliance's de-identified store at DIR, labelled by `--fl-labels`
  (`module:function`, label_of(InstanceRecord) -> int | None, e.g.
  `incisive_node.fl.body_part:label_of`; or `annotation`, what reviewers settled) and
  filtered by `--fl-consent` (`registry`: the store's consent registry, asked per patient at
  every message; or `module:function`, consented(pseudonym, purpose) -> bool). Without a
  consent hook a store trains on nothing: consent is opt-in.

The job narrows that further with its `dataQuery` (`data_query_config`): a store's
instances whose header has one of the listed modalities and body parts. Synthetic data
has neither and is not narrowed; `labels` is carried but the labels come from the site.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SYNTHETIC = re.compile(r"synthetic(?::(\d+)(?:/(\d+))?)?")
_HOOK = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_CODE = re.compile(r"[A-Za-z0-9 _]{1,16}")  # a DICOM code string (CS), e.g. CT, CHEST


def data_query_config(query: dict[str, Any]) -> dict[str, str]:
    """The node config that applies a TrainingJob's `dataQuery` at this site."""
    config: dict[str, str] = {}
    for field, key in (("modalities", "modalities"), ("bodyParts", "body-parts")):
        values = [str(v) for v in query.get(field) or []]
        for value in values:
            if not _CODE.fullmatch(value):
                raise ValueError(f"dataQuery.{field}: {value!r} is not a DICOM code string")
        if values:
            config[key] = ",".join(sorted({v.upper() for v in values}))
    return config


@dataclass(frozen=True)
class DataSource:
    kind: str  # synthetic | store
    site_index: int = 0
    site_count: int = 2
    samples: int = 200
    store_dir: str = ""
    labels: str = ""
    consent: str = ""

    @classmethod
    def parse(cls, text: str, *, samples: int = 200, labels: str = "",
              consent: str = "") -> DataSource:
        """`synthetic[:I[/N]]` or `store:DIR`; a clear ValueError for anything else."""
        if match := _SYNTHETIC.fullmatch(text):
            index = int(match.group(1) or 0)
            count = int(match.group(2) or max(2, index + 1))
            if not 0 <= index < count:
                raise ValueError(f"--fl-data {text}: the site index must be below the count")
            if samples < 10:
                raise ValueError("--fl-samples must be at least 10")
            return cls("synthetic", site_index=index, site_count=count, samples=samples)
        if text.startswith("store:") and len(text) > len("store:"):
            if labels != "annotation" and not _HOOK.fullmatch(labels):
                raise ValueError("--fl-data store:DIR needs --fl-labels module:function "
                                 "or annotation")
            if consent and consent != "registry" and not _HOOK.fullmatch(consent):
                raise ValueError("--fl-consent must be registry or module:function")
            folder = text.removeprefix("store:")
            if any(c in folder for c in "\"\\ \n"):
                raise ValueError("--fl-data store:DIR: the folder may not contain spaces or quotes")
            return cls("store", store_dir=folder, labels=labels, consent=consent)
        raise ValueError(f"--fl-data {text!r}: expected synthetic[:I[/N]] or store:DIR")

    def node_config(self, torch_threads: int) -> dict[str, Any]:
        """The SuperNode's node config (client_app.py reads it)."""
        if self.kind == "synthetic":
            config: dict[str, Any] = {"data": "synthetic", "site-index": self.site_index,
                                      "site-count": self.site_count, "samples": self.samples}
        else:
            config = {"data": "store", "store-dir": self.store_dir, "labels": self.labels}
            if self.consent:
                config["consent"] = self.consent
        config["torch-threads"] = torch_threads
        return config


@dataclass(frozen=True)
class FlSettings:
    state_dir: Path
    host: str  # hub: the SuperLink's address; site: its SuperNodes' own Runtime API address
    data: DataSource | None = None  # sites only
    torch_threads: int = 1

    def __post_init__(self) -> None:
        address = ipaddress.ip_address(self.host)
        if not address.is_loopback:
            raise ValueError(f"--fl-host {self.host}: the local runtime listens on "
                             "127.0.0.0/8 only")
        if self.torch_threads < 1:
            raise ValueError("--fl-torch-threads must be at least 1")


def from_args(args: Any) -> FlSettings | None:
    """The settings from `incisive operator run`'s flags, or None when FL is off."""
    state_dir = getattr(args, "fl_state_dir", None)
    if not state_dir:
        return None
    data = None
    if args.mode == "site":
        if not args.fl_data:
            raise ValueError("a site operator with --fl-state-dir needs --fl-data: "
                             "synthetic[:I[/N]] or store:DIR")
        data = DataSource.parse(args.fl_data, samples=args.fl_samples,
                                labels=args.fl_labels or "", consent=args.fl_consent or "")
    return FlSettings(Path(state_dir).resolve(), args.fl_host, data, args.fl_torch_threads)
