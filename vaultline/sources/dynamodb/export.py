"""Export mode: ExportTableToPointInTime into the vault's staging area, then each data file into the vault format.

An export is a consistent point-in-time copy that spends no read capacity. It needs point-in-time recovery on the
table and an S3 vault (DynamoDB writes the export into the vault bucket, under ``staging/<rp>/export/``).
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from botocore.exceptions import ClientError

from vaultline.errors import SourceError, VaultError
from vaultline.repository.layout import export_prefix
from vaultline.repository.vault import Vault
from vaultline.sources.dynamodb.items import encode_item, item_from_json, iter_lines, key_of
from vaultline.sources.dynamodb.model import TableBackupInfo
from vaultline.sources.dynamodb.table import TableSnapshot
from vaultline.storage import S3Storage

ExportType = Literal["FULL_EXPORT", "INCREMENTAL_EXPORT"]

# DynamoDB accepts incremental windows of 15 minutes to 24 hours.
INCREMENTAL_MIN = timedelta(minutes=15)
INCREMENTAL_MAX = timedelta(hours=24)
# A daily schedule starts a little more or less than 24 hours after the last export (flexible windows, start-up
# jitter): up to this much past 24 hours, the window is cut at 24 hours (a copy that many minutes old) rather than
# falling back to a full export on about every other day.
INCREMENTAL_SLACK = timedelta(hours=2)


def incremental_window(parent: TableBackupInfo | None, now: datetime) -> tuple[datetime, datetime] | None:
    """(from, to) when an incremental export since the parent's export is possible, else None (full export)."""
    if parent is None or parent.mode != "export" or parent.export_time is None:
        return None
    start = parent.export_time
    elapsed = now - start
    if elapsed < INCREMENTAL_MIN or elapsed > INCREMENTAL_MAX + INCREMENTAL_SLACK:
        return None
    return start, min(now, start + INCREMENTAL_MAX)


def start_export(
    ddb: Any, vault: Vault, snapshot: TableSnapshot, rp_id: str, window: tuple[datetime, datetime] | None
) -> tuple[str, ExportType, datetime]:
    """Start the export; return (export ARN, export type, export time)."""
    if not isinstance(vault.storage, S3Storage):
        raise VaultError(f"{vault.url}: export mode writes into the vault bucket; it needs an s3:// vault")
    if not snapshot.pitr_enabled:
        raise SourceError(f"table {snapshot.name}: point-in-time recovery is off; enable it or use scan mode")
    now = datetime.now(UTC)
    args: dict[str, Any] = {
        "TableArn": snapshot.description["TableArn"],
        "S3Bucket": vault.storage.bucket,
        "S3Prefix": vault.storage.prefix + export_prefix(rp_id),
        "ExportFormat": "DYNAMODB_JSON",
    }
    if window:
        args["ExportType"] = "INCREMENTAL_EXPORT"
        args["IncrementalExportSpecification"] = {
            "ExportFromTime": window[0],
            "ExportToTime": window[1],
            "ExportViewType": "NEW_IMAGE",
        }
    else:
        # No ExportTime: AWS then copies the table as of its own clock's now, and says when in the response. Asking
        # for our clock's now could name a moment past the end of the PITR window and be refused.
        args["ExportType"] = "FULL_EXPORT"
    try:
        described = ddb.export_table_to_point_in_time(**args)["ExportDescription"]
    except ClientError as exc:
        raise SourceError(
            f"table {snapshot.name}: export failed to start ({exc.response['Error'].get('Code')})"
        ) from None
    # An incremental copy is as of the end of its window (where the next window starts); a full one as of the
    # ExportTime AWS chose (moto reports none: then our clock's now).
    export_time = window[1] if window else (described.get("ExportTime") or now)
    export_type: ExportType = "INCREMENTAL_EXPORT" if window else "FULL_EXPORT"
    return described["ExportArn"], export_type, export_time


def export_status(ddb: Any, arn: str) -> dict[str, Any]:
    """DescribeExport's description; SourceError if the export failed."""
    described: dict[str, Any] = ddb.describe_export(ExportArn=arn)["ExportDescription"]
    if described.get("ExportStatus") == "FAILED":
        raise SourceError(f"export {arn} failed: {described.get('FailureCode')}: {described.get('FailureMessage')}")
    return described


def wait_for_export(
    ddb: Any, arn: str, sleep: Callable[[float], None] = time.sleep, poll: float = 15.0, timeout: float = 86_400
) -> dict[str, Any]:
    """Poll until the export is COMPLETED (exports take minutes even for small tables)."""
    waited = 0.0
    while True:
        described = export_status(ddb, arn)
        if described.get("ExportStatus") == "COMPLETED":
            return described
        if waited >= timeout:
            raise SourceError(f"export {arn} still {described.get('ExportStatus')} after {timeout:.0f} s")
        sleep(poll)
        waited += poll


def data_file_keys(vault: Vault, rp_id: str) -> list[str]:
    """Vault keys of the export's data files, sorted (the segment number of each is its position)."""
    keys = [o.key for o in vault.storage.list(export_prefix(rp_id) + "/")]
    return sorted(k for k in keys if "/data/" in k and k.endswith(".gz"))


def delete_export(vault: Vault, rp_id: str) -> None:
    """Delete the files an export wrote into the run's staging (a run that stages nothing else, as the CLI's)."""
    for obj in list(vault.storage.list(export_prefix(rp_id) + "/")):
        vault.storage.delete(obj.key)


def read_export_file(vault: Vault, key: str) -> Iterator[dict[str, Any]]:
    """The JSON documents of one gzipped data file: ``{"Item": ...}`` lines (full) or change records (incremental)."""
    for line in gzip.decompress(vault.storage.get(key)).split(b"\n"):
        if line.strip():
            yield orjson.loads(line)


def full_export_lines(docs: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """Encoded item lines of a full export's data file."""
    for doc in docs:
        yield encode_item(item_from_json(doc["Item"]))


def change_set(docs: Iterable[dict[str, Any]], key_names: list[str]) -> dict[bytes, bytes | None]:
    """Incremental export records by key: the new item's line, or None for a deletion. Full ``Item`` records
    (which moto writes whatever the export type) count as puts."""
    changes: dict[bytes, bytes | None] = {}
    for doc in docs:
        if "Item" in doc:
            item = item_from_json(doc["Item"])
            changes[key_of(item, key_names)] = encode_item(item)
        else:
            keys = item_from_json(doc["Keys"])
            image = doc.get("NewImage")
            changes[key_of(keys, key_names)] = encode_item(item_from_json(image)) if image else None
    return changes


def apply_to_stream(
    chunks: Iterable[bytes], changes: dict[bytes, bytes | None], key_names: list[str]
) -> tuple[list[bytes], list[bytes]]:
    """One parent stream with the changes to its items applied in place: (its new lines, the keys it applied).

    Each segment of the parent is merged this way; what no segment applied are new items (see :func:`new_items`).
    Only the change set is held in memory."""
    lines: list[bytes] = []
    applied: list[bytes] = []
    for line in iter_lines(chunks):
        key = key_of(item_from_json(orjson.loads(line)), key_names)
        if key in changes:
            applied.append(key)
            new = changes[key]
            if new is not None:
                lines.append(new)
        else:
            lines.append(line + b"\n")
    return lines, applied


def new_items(changes: dict[bytes, bytes | None], applied: set[bytes]) -> list[bytes]:
    """The put lines of changes to keys no parent stream held: items created since the parent, in key order so the
    stream (and its chunks) does not depend on the order the change records came in."""
    return [line for key, line in sorted(changes.items()) if key not in applied and line is not None]
