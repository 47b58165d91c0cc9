"""Run records: the lineage database, the hash-chained audit trail, environment capture."""

from mlestar.tracking.audit import AuditTrail, verify_audit
from mlestar.tracking.environment import capture_environment
from mlestar.tracking.lineage import ArtifactRecord, LineageDB, StageRunRecord

__all__ = ["ArtifactRecord", "AuditTrail", "LineageDB", "StageRunRecord", "capture_environment", "verify_audit"]
