"""A source listed from its S3 Inventory report (manifest.json, manifest.checksum and gzip CSV files, written here
as AWS writes them): the same recovery point as from the listing, whatever the files' order; a report that is
malformed, damaged, incomplete, stale or lacks a field is refused by name, and nothing is left staged."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import pytest

from vaultline.errors import SourceError
from vaultline.repository.layout import STAGING_PREFIX
from vaultline.repository.manifest import iter_entries, list_recovery_point_ids, load_recovery_point
from vaultline.repository.vault import Vault
from vaultline.runs import backup_steps
from vaultline.runs.models import BackupWorkerEvent, CommitEvent, Prepared, PrepareEvent, WorkItem
from vaultline.sources import s3_inventory
from vaultline.storage import S3Storage

FIELDS = ["Bucket", "Key", "Size", "LastModifiedDate", "ETag", "StorageClass", "IsMultipartUploaded"]
VERSIONED_FIELDS = ["Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker", "Size", "LastModifiedDate", "ETag"]
VERSIONED_FIELDS += ["StorageClass"]
KEYS = ["a b/with space.txt", "c+plus", "d/é ünïcode", "e%percent", *(f"f/{n:03d}" for n in range(60))]
INVENTORY = {"destination": "s3://inventories/reports", "configuration": "daily"}
FOLDER = "reports/src/daily/"


@pytest.fixture
def bucket(s3: Any) -> Any:
    for name in ("src", "vaults", "inventories"):
        s3.create_bucket(Bucket=name)
    for number, key in enumerate(KEYS):
        s3.put_object(Bucket="src", Key=key, Body=b"object %d" % number)
    return s3


@pytest.fixture
def vault(bucket: Any) -> Vault:
    return Vault.init(S3Storage("vaults", "v"))


def write_report(
    s3: Any,
    when: datetime | None = None,
    files: int = 3,
    shuffle: bool = False,
    fields: Sequence[str] = FIELDS,
    file_format: str = "CSV",
    complete: bool = True,
) -> str:
    """The inventory of bucket ``src`` as AWS delivers it, from the bucket as it is now; return its folder."""
    when = when or datetime.now(UTC)
    versioned = "VersionId" in fields
    if versioned:
        found = s3.list_object_versions(Bucket="src")
        items = found.get("Versions", []) + [marker | {"Marker": True} for marker in found.get("DeleteMarkers", [])]
    else:
        items = s3.list_objects_v2(Bucket="src").get("Contents", [])
    rows = [_row(item, fields) for item in items]
    if shuffle:
        random.Random(7).shuffle(rows)
    listed = []
    for number in range(files):
        text = io.StringIO()
        csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows[number::files])
        body = gzip.compress(text.getvalue().encode())
        key = f"{FOLDER}data/{when:%Y%m%d%H%M}-{number}.csv.gz"
        s3.put_object(Bucket="inventories", Key=key, Body=body)
        listed.append({"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()})
    manifest = {
        "sourceBucket": "src",
        "destinationBucket": "arn:aws:s3:::inventories",
        "version": "2016-11-30",
        "creationTimestamp": str(int(when.timestamp() * 1000)),
        "fileFormat": file_format,
        "fileSchema": ", ".join(fields),
        "files": listed,
    }
    folder = f"{FOLDER}{when:%Y-%m-%dT%H-%MZ}/"
    body = json.dumps(manifest).encode()
    s3.put_object(Bucket="inventories", Key=folder + "manifest.json", Body=body)
    if complete:
        s3.put_object(Bucket="inventories", Key=folder + "manifest.checksum", Body=hashlib.md5(body).hexdigest())
    return folder


def _row(item: dict[str, Any], fields: Sequence[str]) -> list[str]:
    values = {
        "Bucket": "src",
        "Key": quote_plus(item["Key"], safe="/"),
        "VersionId": item.get("VersionId", ""),
        "IsLatest": str(item.get("IsLatest", True)).lower(),
        "IsDeleteMarker": str(item.get("Marker", False)).lower(),
        "Size": str(item.get("Size", "")),
        "LastModifiedDate": f"{item['LastModified'].astimezone(UTC):%Y-%m-%dT%H:%M:%S}.000Z",
        "ETag": item.get("ETag", "").strip('"'),
        "StorageClass": item.get("StorageClass", "STANDARD"),
        "IsMultipartUploaded": "false",
    }
    return [values[name] for name in fields]


def backup(vault: Vault, inventory: dict[str, Any] | None = None) -> str:
    source: dict[str, Any] = {"type": "s3", "url": "s3://src"} | ({"inventory": inventory} if inventory else {})
    prepared = backup_steps.prepare(vault, PrepareEvent(request={"source": source, "tags_refresh": "never"}))
    _work(vault, prepared)
    return backup_steps.commit(vault, CommitEvent(prepared=prepared)).recovery_point


def _work(vault: Vault, prepared: Prepared) -> None:
    storage = vault.storage
    assert isinstance(storage, S3Storage)
    work_list = json.loads(storage.s3.get_object(Bucket=storage.bucket, Key=prepared.work_list_key)["Body"].read())
    for item in work_list:
        backup_steps.work(vault, BackupWorkerEvent(recovery_point=prepared.recovery_point, item=WorkItem(**item)))


def entries(vault: Vault, rp_id: str) -> list[dict[str, Any]]:
    return [e.model_dump() for e in iter_entries(vault, load_recovery_point(vault, rp_id))]


def test_a_backup_from_the_inventory_equals_a_backup_from_the_listing_and_carries_it_over(
    bucket: Any, vault: Vault
) -> None:
    write_report(bucket)

    listed = backup(vault)
    inventoried = backup(vault, INVENTORY)

    assert entries(vault, inventoried) == entries(vault, listed)
    rp = load_recovery_point(vault, inventoried)
    # Same key, version, size, ETag and mtime as the listing's parent: nothing is read again.
    assert rp.stats.objects_unchanged == len(KEYS) and rp.stats.objects_read == 0


def test_unsorted_report_files_are_sorted_through_spilled_runs(
    bucket: Any, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = backup(vault)
    write_report(bucket, shuffle=True)
    monkeypatch.setattr(s3_inventory, "RUN_ROWS", 7)
    spilled: list[str] = []
    spill = s3_inventory._spill
    monkeypatch.setattr(s3_inventory, "_spill", lambda *args: spilled.append(spill(*args)) or spilled[-1])

    inventoried = backup(vault, INVENTORY)

    assert len(spilled) == -(-len(KEYS) // 7)
    assert entries(vault, inventoried) == entries(vault, listed)


def test_a_report_of_all_versions_keeps_each_keys_current_version(s3: Any) -> None:
    for name in ("src", "vaults", "inventories"):
        s3.create_bucket(Bucket=name)
    vault = Vault.init(S3Storage("vaults", "v"))
    s3.put_bucket_versioning(Bucket="src", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="src", Key="doc", Body=b"old")
    current = s3.put_object(Bucket="src", Key="doc", Body=b"new")["VersionId"]
    s3.put_object(Bucket="src", Key="gone", Body=b"x")
    s3.delete_object(Bucket="src", Key="gone")  # its latest version is a delete marker: not in the backup
    write_report(s3, fields=VERSIONED_FIELDS)

    rp = backup(vault, INVENTORY)

    assert [(e["key"], e["version_id"]) for e in entries(vault, rp)] == [("doc", current)]


def test_an_object_deleted_since_the_report_is_a_vanished_object(bucket: Any, vault: Vault) -> None:
    write_report(bucket)
    bucket.delete_object(Bucket="src", Key="c+plus")

    rp = load_recovery_point(vault, backup(vault, INVENTORY))

    assert rp.issues.vanished == 1 and [i.key for i in rp.issues.objects] == ["c+plus"]
    assert len(entries(vault, rp.id)) == len(KEYS) - 1


def test_the_newest_complete_report_is_read_an_incomplete_newer_one_is_not(bucket: Any, vault: Vault) -> None:
    write_report(bucket, when=datetime.now(UTC) - timedelta(hours=2))
    bucket.put_object(Bucket="src", Key="zz-after-the-report", Body=b"new")
    write_report(bucket, complete=False)  # still being delivered: no manifest.checksum yet

    rp = backup(vault, INVENTORY)

    assert "zz-after-the-report" not in [e["key"] for e in entries(vault, rp)]


def _refused(vault: Vault, match: str) -> None:
    with pytest.raises(SourceError, match=match):
        backup(vault, INVENTORY)
    assert list_recovery_point_ids(vault) == []
    assert [o.key for o in vault.storage.list(STAGING_PREFIX) if not o.key.endswith("/")] == []


def test_a_manifest_that_does_not_match_its_checksum_is_refused(bucket: Any, vault: Vault) -> None:
    folder = write_report(bucket)
    bucket.put_object(Bucket="inventories", Key=folder + "manifest.checksum", Body=b"0" * 32)
    _refused(vault, "manifest.json: does not match its manifest.checksum")


def test_a_malformed_manifest_is_refused(bucket: Any, vault: Vault) -> None:
    folder = write_report(bucket)
    body = b'{"sourceBucket": "src", "files": "none"}'
    bucket.put_object(Bucket="inventories", Key=folder + "manifest.json", Body=body)
    bucket.put_object(Bucket="inventories", Key=folder + "manifest.checksum", Body=hashlib.md5(body).hexdigest())
    _refused(vault, "malformed manifest")


def test_a_report_missing_a_needed_field_is_refused_naming_it(bucket: Any, vault: Vault) -> None:
    write_report(bucket, fields=[f for f in FIELDS if f != "ETag"])
    _refused(vault, "the report lacks field ETag")


def test_a_report_in_another_format_is_refused(bucket: Any, vault: Vault) -> None:
    write_report(bucket, file_format="Parquet")
    _refused(vault, "format Parquet is not read \\(only CSV\\)")


def test_a_report_older_than_the_plan_allows_is_refused(bucket: Any, vault: Vault) -> None:
    write_report(bucket, when=datetime.now(UTC) - timedelta(days=3))
    _refused(vault, "the newest complete report is 72 hours old .* the plan allows 48")


def test_a_data_file_that_does_not_match_its_md5_is_refused(bucket: Any, vault: Vault) -> None:
    write_report(bucket, files=1)
    (key,) = [o["Key"] for o in bucket.list_objects_v2(Bucket="inventories", Prefix=FOLDER + "data/")["Contents"]]
    bucket.put_object(Bucket="inventories", Key=key, Body=gzip.compress(b'"src","x","1","","","STANDARD","false"\n'))
    _refused(vault, "does not match its MD5")


def test_no_report_at_all_is_refused(bucket: Any, vault: Vault) -> None:
    _refused(vault, "no complete report")
