"""Generate CustomResourceDefinitions from the pydantic models (the one source of truth).

pydantic writes JSON Schema (2020-12 flavoured); Kubernetes wants a *structural* OpenAPI v3
schema: every node typed, no $ref, no anyOf for optionals, no `additionalProperties: false`,
int-or-string spelled its own way, and defaults on nested objects so the apiserver fills
them in. This module does that translation and adds the CRD's names, printer columns,
status subresource and CEL rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from . import GROUP
from .v1alpha1 import KINDS, VERSION, Resource

_KEEP = {
    "type", "description", "default", "enum", "format", "pattern", "minLength", "maxLength",
    "minimum", "maximum", "minItems", "maxItems", "maxProperties", "x-kubernetes-int-or-string",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
}


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items()
                                                          if k != "$ref"}}
    return node


def structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Translate one pydantic JSON-schema node into a structural OpenAPI v3 node."""
    node = _resolve(node, defs)
    if node.get("x-kubernetes-int-or-string"):
        out = {"x-kubernetes-int-or-string": True}
        if "default" in node:
            out["default"] = node["default"]
        if "description" in node:
            out["description"] = node["description"]
        return out
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {node}")
        merged = {**{k: v for k, v in node.items() if k != "anyOf"}, **_resolve(options[0], defs)}
        if merged.get("default", "") is None:
            del merged["default"]
        return structural(merged, defs)
    if "const" in node:
        node = {**node, "enum": [node["const"]], "type": "string"}
    out: dict[str, Any] = {}
    if "exclusiveMinimum" in node:  # JSON Schema 2020 number -> OpenAPI 3.0 boolean
        out["minimum"], out["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if "exclusiveMaximum" in node:
        out["maximum"], out["exclusiveMaximum"] = node["exclusiveMaximum"], True
    out.update({k: v for k, v in node.items() if k in _KEEP})
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        out["type"] = "object"
        properties = node.get("properties", {})
        if properties:
            out["properties"] = {}
            for name, child in properties.items():
                converted = structural(child, defs)
                # A nested object with defaults inside gets `{}` as its own default, so the
                # apiserver descends into it and fills those in.
                resolved = _resolve(child, defs)
                if (
                    name not in node.get("required", [])
                    and "default" not in converted
                    and "properties" in resolved
                    and not _has_null(child)
                ):
                    converted["default"] = {}
                if name == "conditions" and converted.get("type") == "array":
                    converted["x-kubernetes-list-type"] = "map"
                    converted["x-kubernetes-list-map-keys"] = ["type"]
                out["properties"][name] = converted
        if node.get("required"):
            out["required"] = list(node["required"])
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = structural(extra, defs)
    elif kind == "array":
        out["items"] = structural(node["items"], defs)
    return out


def _has_null(node: dict[str, Any]) -> bool:
    return any(o.get("type") == "null" for o in node.get("anyOf", []))


def _schema_of(model: type) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True)
    return structural(raw, raw.get("$defs", {}))


def printer_columns(resource: type[Resource]) -> list[dict[str, Any]]:
    condition = f'.status.conditions[?(@.type=="{resource.summary_condition}")]'
    return [
        {"name": resource.summary_condition, "type": "string", "jsonPath": f"{condition}.status"},
        {"name": "Reason", "type": "string", "jsonPath": f"{condition}.reason"},
        *resource.printer_columns,
        {"name": "Message", "type": "string", "jsonPath": f"{condition}.message",
         "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def crd(resource: type[Resource]) -> dict[str, Any]:
    spec = _schema_of(resource.spec)
    if resource.spec_validations:
        spec["x-kubernetes-validations"] = list(resource.spec_validations)
    root: dict[str, Any] = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": _schema_of(resource.status),
        },
    }
    if resource.root_validations:
        root["x-kubernetes-validations"] = list(resource.root_validations)
    kind = resource.kind
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{resource.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "incisive"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": resource.plural,
                "singular": kind.lower(),
                "shortNames": list(resource.short_names),
                "categories": ["incisive"],
            },
            "scope": resource.scope,
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": printer_columns(resource),
                "schema": {"openAPIV3Schema": root},
            }],
        },
    }


HEADER = (
    "# Generated by `incisive crds generate` from operator/incisive_operator/api; do not edit.\n"
)


def render(resource: type[Resource]) -> str:
    return HEADER + yaml.safe_dump(crd(resource), sort_keys=False, width=100)


def generate(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for resource in KINDS:
        path = out_dir / f"{GROUP}_{resource.plural}.yaml"
        path.write_text(render(resource))
        written.append(path)
    return written


def stale(out_dir: Path) -> list[str]:
    """Names of CRD files in out_dir that differ from what the models generate."""
    differing = []
    expected = {f"{GROUP}_{r.plural}.yaml": render(r) for r in KINDS}
    for name, text in expected.items():
        path = out_dir / name
        if not path.exists() or path.read_text() != text:
            differing.append(name)
    extra = {p.name for p in out_dir.glob(f"{GROUP}_*.yaml")} - expected.keys()
    return differing + sorted(extra)
