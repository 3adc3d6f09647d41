"""Temporary: the old path of the archive audit; imports move to cnnviz.core.models.safety."""

from cnnviz.core.models.safety import (
    TRUST_HINT,
    NotAnExportArchive,
    audit_export_archive,
    forced_weights_only,
)

__all__ = ["TRUST_HINT", "NotAnExportArchive", "audit_export_archive", "forced_weights_only"]
