"""The appliance the operator starts is the appliance we ship: its command line parses."""

from __future__ import annotations

from pathlib import Path

import yaml

from incisive_node.cli import build_parser
from incisive_operator.api.v1alpha1.datanode import DataNodeSpec
from incisive_operator.site import appliance

SAMPLE = Path(__file__).resolve().parents[2] / "crds" / "samples" / "datanode.yaml"


def test_statefulset_args_are_a_valid_incisive_node_serve_command_line() -> None:
    spec = DataNodeSpec.model_validate(yaml.safe_load(SAMPLE.read_text())["spec"])
    argv = appliance.serve_args(spec)
    args = build_parser(argv).parse_args(argv)
    assert args.command == "serve"
    assert args.allow_aet == ["PACS_MAIN", "CT_SCANNER_1"]
    assert args.ae_title == "INCISIVE_RAD"
    assert (args.dicom_port, args.http_port) == (11112, 8080)
    assert args.listen_external and args.host == "0.0.0.0"  # noqa: S104 - inside the pod
    assert args.vault_addr == "https://vault.hospital.example:8200"
    assert args.project == "chest-xray"
    assert args.option == ["retain-longitudinal-modified-dates", "clean-descriptors"]


def test_probes_and_service_use_the_port_the_appliance_serves_health_on() -> None:
    spec = DataNodeSpec.model_validate(yaml.safe_load(SAMPLE.read_text())["spec"])
    children = {m["kind"]: m for m in appliance.desired("radiology", "ns", spec)}
    container = children["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    http = next(p for p in container["ports"] if p["name"] == "http")
    assert http["containerPort"] == spec.ingest.dicomweb.port
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "radiology-vault-token"
    service_ports = {p["name"]: p["port"] for p in children["Service"]["spec"]["ports"]}
    assert service_ports == {"dicom": 11112, "http": 8080}


def test_without_allowed_senders_the_dicom_door_stays_closed() -> None:
    argv = appliance.serve_args(DataNodeSpec())
    assert "--allow-aet" not in argv
    build_parser(argv).parse_args(argv)  # still a valid command line
