"""The INCISIVE control plane: the kopf operator (hub and site modes) and developer tooling."""
