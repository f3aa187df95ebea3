"""The custom resources' API: pydantic models are the single source of truth for the CRDs."""

GROUP = "incisive-project.eu"
