"""`incisive demo`: the main job, a whole local federation on one machine (flow.py)."""

from .flow import register

__all__ = ["register"]
