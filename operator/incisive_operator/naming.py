"""The operator's own names: labels, annotations, finalizer, field manager."""

from .api import GROUP

FIELD_MANAGER = "incisive-operator"
FINALIZER = f"{GROUP}/finalizer"
ANNOTATION_PREFIX = GROUP
MANAGED_BY = {"app.kubernetes.io/managed-by": FIELD_MANAGER}
DATANODE_LABEL = f"{GROUP}/datanode"
SITE_LABEL = f"{GROUP}/site"
