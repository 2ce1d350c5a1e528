"""An S3 Inventory report as a source's listing: AWS's own way to list a bucket of billions of objects.

An inventory configuration on the source bucket delivers, daily or weekly, a report under its destination
(``s3://DEST/PREFIX``): ``PREFIX/<source bucket>/<configuration id>/<YYYY-MM-DDTHH-MMZ>/manifest.json`` with
``manifest.checksum`` (the MD5 of ``manifest.json``) beside it, and the gzip CSV files the manifest names (each with
its MD5) under ``.../<configuration id>/data/``. A report is complete once both manifest files exist; the newest
complete one is read, refused when older than the plan allows.

The CSV files hold one row per object (or per version), in the columns ``fileSchema`` names; keys are URL-encoded
(a space as ``+``). AWS does not promise any order within or across the files, and a backup's entries meet the
parent's as key-sorted streams: :func:`sorted_rows` never trusts the files' order (sorting a run already in order
costs one pass) and, once more rows than one run holds arrive, sorts runs of :data:`RUN_ROWS` rows in memory, spills
each (zstd-compressed) to a temporary directory and merges the runs (the merged stream is checked again by the
parent join). Memory holds one run whatever the report's size (about 80 MB); the temporary
directory holds the whole report, compressed (measured: 12 bytes per object for keys like
``logs/2026/01/02/host-17/000000123.gz``, so 10 million objects take about 120 MB of Lambda's 512 MB of ``/tmp``;
longer, less regular keys take more), and the merge keeps one open file per run (10 million objects are 50 runs).
The merge is one pass: a report of more than about 200 million objects would pass Lambda's 1,024 file descriptors,
and its sort alone (5 s of CPU per million rows, measured) would pass 15 minutes near 150 million: stated ceilings.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import heapq
import io
import re
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any
from urllib.parse import unquote_plus

import orjson
import zstandard
from botocore.exceptions import ClientError
from pydantic import ValidationError

from vaultline.aws import error_code
from vaultline.errors import SourceError
from vaultline.model import VaultlineModel
from vaultline.sources.s3_inventory_model import InventoryReport

MANIFEST = "manifest.json"
CHECKSUM = "manifest.checksum"
_REPORT_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}Z/$")
# What a backup needs of every object: its identity and what the change test compares. ``Bucket`` and ``Key`` are
# in every report; the others are optional fields of an inventory configuration that it must include.
REQUIRED_FIELDS = ("Bucket", "Key", "Size", "LastModifiedDate", "ETag", "StorageClass")
# A report of all versions (VersionId in the schema) must say which version is current and which is a delete marker.
VERSION_FIELDS = ("IsLatest", "IsDeleteMarker")
RUN_ROWS = 200_000  # rows sorted in memory at once: about 80 MB of rows held (some 400 bytes a row)


class ReportFile(VaultlineModel):
    key: str
    size: int = 0
    MD5checksum: str


class ReportManifest(VaultlineModel):
    """``manifest.json``, as AWS writes it (the fields read here; others are ignored)."""

    sourceBucket: str
    destinationBucket: str
    creationTimestamp: str
    fileFormat: str
    fileSchema: str = ""
    files: list[ReportFile]

    @property
    def created(self) -> datetime:
        return datetime.fromtimestamp(int(self.creationTimestamp) / 1000, UTC)

    @property
    def fields(self) -> list[str]:
        return [name.strip() for name in self.fileSchema.split(",")]


Row = tuple[str, int, str | None, str | None, str, str | None]
"""An object of a report: key, size, ETag (quoted, as a listing gives it), version id, last modified, storage
class."""


class Inventory:
    """The newest complete report of ``report`` for ``source_bucket``, read through ``s3``."""

    def __init__(self, s3: Any, report: InventoryReport, source_bucket: str) -> None:
        self.s3 = s3
        self.report = report
        self.source_bucket = source_bucket
        self.bucket, self.folder = report.folder(source_bucket)
        self.where = f"inventory s3://{self.bucket}/{self.folder}"

    def newest(self, now: datetime | None = None) -> tuple[str, ReportManifest]:
        """The newest complete report's folder and manifest, checked: its checksum, format, schema and age."""
        folders = sorted(self._report_folders(), reverse=True)
        for folder in folders:
            try:
                checksum = self._get(folder + CHECKSUM).decode().strip().split()[0]
            except (_Missing, IndexError, UnicodeDecodeError):
                continue  # still being delivered (or broken): the one before is the newest complete report
            body = self._get(folder + MANIFEST)
            if hashlib.md5(body, usedforsecurity=False).hexdigest() != checksum.lower():
                raise SourceError(f"{self.where}{folder}{MANIFEST}: does not match its {CHECKSUM}")
            return folder, self._checked(folder, body, now or datetime.now(UTC))
        raise SourceError(f"{self.where}: no complete report (a folder with {MANIFEST} and {CHECKSUM})")

    def _checked(self, folder: str, body: bytes, now: datetime) -> ReportManifest:
        where = f"{self.where}{folder}{MANIFEST}"
        try:
            manifest = ReportManifest.model_validate_json(body)
            created = manifest.created
        except (ValidationError, ValueError) as exc:
            raise SourceError(f"{where}: malformed manifest ({_first_error(exc)})") from None
        if manifest.fileFormat.upper() != "CSV":
            raise SourceError(
                f"{where}: format {manifest.fileFormat} is not read (only CSV): configure the inventory as CSV"
            )
        if manifest.sourceBucket != self.source_bucket:
            raise SourceError(f"{where}: a report of bucket {manifest.sourceBucket}, not {self.source_bucket}")
        fields = manifest.fields
        needed = REQUIRED_FIELDS + (VERSION_FIELDS if "VersionId" in fields else ())
        missing = [name for name in needed if name not in fields]
        if missing:
            raise SourceError(f"{where}: the report lacks field {missing[0]} (add it to the inventory configuration)")
        age = now - created
        if age > timedelta(hours=self.report.max_age_hours):
            raise SourceError(
                f"{where}: the newest complete report is {age.total_seconds() / 3600:.0f} hours old "
                f"(from {created:%Y-%m-%d %H:%M} UTC); the plan allows {self.report.max_age_hours}"
            )
        return manifest

    def rows(self, manifest: ReportManifest) -> Iterator[Row]:
        """Every current object of the report, file after file, in the files' order (not sorted)."""
        fields = manifest.fields
        column = {name: fields.index(name) for name in fields}
        versions = "VersionId" in column
        for file in manifest.files:
            body = self._stream(file.key)
            hashed = _Hashed(body)
            text = io.TextIOWrapper(gzip.GzipFile(fileobj=hashed), encoding="utf-8", newline="")
            try:
                for number, values in enumerate(csv.reader(text), 1):
                    if len(values) != len(fields):
                        raise SourceError(
                            f"{self.where}: {file.key} line {number} has {len(values)} fields, not {len(fields)}"
                        )
                    if versions and (
                        values[column["IsLatest"]] != "true" or values[column["IsDeleteMarker"]] == "true"
                    ):
                        continue
                    yield _row(values, column, versions)
            except (OSError, EOFError, UnicodeDecodeError, csv.Error, ValueError) as exc:
                raise SourceError(f"{self.where}: {file.key} is not a gzip CSV file ({exc})") from None
            finally:
                body.close()
            if hashed.md5.hexdigest() != file.MD5checksum.lower():
                raise SourceError(f"{self.where}: {file.key} does not match its MD5 in {MANIFEST}")

    def _report_folders(self) -> Iterator[str]:
        """The dated report folders (one name per report kept: a year of daily reports is 365 names)."""
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.folder, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(self.folder) :]
                    if _REPORT_FOLDER.match(name):
                        yield self.folder + name
        except ClientError as exc:
            raise self._error(exc, "") from None

    def _get(self, key: str) -> bytes:
        body = self._stream(key)
        try:
            return bytes(body.read())
        finally:
            body.close()

    def _stream(self, key: str) -> Any:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                raise _Missing(key) from None
            raise self._error(exc, key) from None

    def _error(self, exc: ClientError, key: str) -> SourceError:
        code = error_code(exc)
        where = f"s3://{self.bucket}/{key or self.folder}"
        if code == "NoSuchBucket":
            return SourceError(f"inventory bucket {self.bucket} does not exist")
        if code in ("AccessDenied", "403"):
            return SourceError(f"{where}: access denied (the inventory destination must be readable)")
        return SourceError(f"{where}: {code or exc}")


class _Missing(Exception):
    """An object of the report folder is not there (yet)."""


class _Hashed(io.RawIOBase):
    """A readable stream that hashes what passes through it: a file's MD5 is checked as it streams."""

    def __init__(self, body: Any) -> None:
        self.body = body
        self.md5 = hashlib.md5(usedforsecurity=False)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.body.read(len(buffer))
        self.md5.update(data)
        buffer[: len(data)] = data
        return len(data)


def _row(values: list[str], column: dict[str, int], versions: bool) -> Row:
    etag = values[column["ETag"]]
    version = values[column["VersionId"]] if versions else ""
    return (
        unquote_plus(values[column["Key"]]),
        int(values[column["Size"]] or 0),
        f'"{etag}"' if etag and not etag.startswith('"') else etag or None,
        None if version in ("", "null") else version,
        values[column["LastModifiedDate"]],
        values[column["StorageClass"]] or None,
    )


def sorted_rows(rows: Iterable[Row], run_rows: int | None = None, spill_dir: str | None = None) -> Iterator[Row]:
    """``rows`` in key order, with memory for ``run_rows`` rows: a report that fits one run is sorted in memory;
    a longer one is cut into sorted runs spilled to a temporary directory (under ``spill_dir``), then merged. The
    files' order is never trusted: sorting a run already in order costs one pass (timsort)."""
    run_rows = run_rows or RUN_ROWS
    run: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="vl-inventory-", dir=spill_dir) as scratch:
        spilled: list[str] = []
        for row in rows:
            run.append(row)
            if len(run) >= run_rows:
                spilled.append(_spill(run, scratch, len(spilled)))
                run = []
        run.sort(key=_key)
        if not spilled:
            yield from run
            return
        if run:
            spilled.append(_spill(run, scratch, len(spilled)))
        run = []
        readers = [_read_run(path) for path in spilled]
        yield from heapq.merge(*readers, key=_key)


def _key(row: Row) -> str:
    return row[0]


def _spill(run: list[Row], scratch: str, number: int) -> str:
    run.sort(key=_key)
    path = f"{scratch}/run-{number:05d}.zst"
    with open(path, "wb") as raw, zstandard.ZstdCompressor(level=1).stream_writer(raw) as out:
        for row in run:
            out.write(orjson.dumps(row))
            out.write(b"\n")
    return path


def _read_run(path: str) -> Iterator[Row]:
    with open(path, "rb") as raw:
        reader: IO[bytes] = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))
        for line in reader:
            key, size, etag, version, modified, storage_class = orjson.loads(line)
            yield key, size, etag, version, modified, storage_class


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
    return str(exc)
