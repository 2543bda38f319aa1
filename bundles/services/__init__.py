"""Import and export: every script and every live polling job as one JSON document, a *bundle*.

A bundle holds definitions only: what a user typed, never runtime state (runs, environments,
batch progress, triggers, logs) and never a secret's value (a secret appears by its vault name;
the target must have a secret of that name). Export is deterministic (sorted keys and items, no
timestamp), so two exports of the same configuration are byte-identical and diffs are meaningful.

Import goes through the same services as the API (`script_create/update`, `job_create/update/
pause/resume`), so an item validates exactly as it would there. Scripts are matched by safe name
(slug), jobs by name; an existing one is updated, never duplicated. The whole import runs in one
transaction: structure and secret names are checked first, then every item is applied in a
savepoint, collecting every error; any error (or a dry run) rolls everything back, so a bundle
is imported completely or not at all, and a dry run reports exactly what the real run would do.
"""

from bundles.services.export import (
    FORMAT,
    VERSION,
    BundleExportConflict,
    BundleInvalid,
    bundle_dumps,
    bundle_export,
)
from bundles.services.imports import ImportReport, ItemResult, bundle_import

__all__ = [
    "FORMAT",
    "VERSION",
    "BundleExportConflict",
    "BundleInvalid",
    "ImportReport",
    "ItemResult",
    "bundle_dumps",
    "bundle_export",
    "bundle_import",
]
