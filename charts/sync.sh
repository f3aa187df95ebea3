#!/usr/bin/env bash
# Copy the generated CRDs and the Grafana dashboards into the charts that ship them.
# Helm cannot read files outside a chart's folder, so the charts carry copies; the tests in
# tests/charts fail when a copy differs from its source (crds/, charts/dashboards/).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rm -f "$here"/incisive-crds/files/*.yaml
cp "$here"/../crds/*.yaml "$here"/incisive-crds/files/
cp "$here"/dashboards/incisive-operator.json "$here"/incisive-hub/dashboards/
cp "$here"/dashboards/incisive-operator.json "$here"/dashboards/incisive-appliance.json \
   "$here"/incisive-node/dashboards/
