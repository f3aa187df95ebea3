"""incisive-project.eu/v1alpha1."""

from .common import VERSION, Condition, Resource
from .dataaccessrequest import AccessReview, DataAccessRequest
from .datanode import DataNode
from .hpcworkload import HPCWorkload
from .site import FederatedSite, WorkItem
from .trainingjob import TrainingJob

KINDS: tuple[type[Resource], ...] = (
    DataNode, TrainingJob, HPCWorkload, FederatedSite, WorkItem, DataAccessRequest, AccessReview,
)

__all__ = [
    "KINDS",
    "VERSION",
    "AccessReview",
    "Condition",
    "DataAccessRequest",
    "DataNode",
    "FederatedSite",
    "HPCWorkload",
    "Resource",
    "TrainingJob",
    "WorkItem",
]
