"""A real local Kubernetes testbed: pinned upstream control planes on loopback, no mocks."""

from .cluster import Cluster
from .errors import TestbedError
from .testbed import Testbed
from .toolchain import Toolchain, ensure

__all__ = ["Cluster", "Testbed", "TestbedError", "Toolchain", "ensure"]
