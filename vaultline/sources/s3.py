"""An S3 bucket (optionally a prefix) as a source, read with the standard credential chain or through a role in
the bucket's account."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from botocore.exceptions import ClientError

from vaultline.aws import client, role_client
from vaultline.errors import SourceError
from vaultline.repository.chunking import Readable
from vaultline.repository.manifest import ObjectEntry
from vaultline.sources.base import KeyFilter, ObjectArchived, ObjectVanished, Source
from vaultline.sources.s3_inventory import Inventory, sorted_rows
from vaultline.sources.s3_inventory_model import InventoryReport
from vaultline.sources.s3_listing import OrderedListing

# S3 response headers that the manifest keeps, and the put_object argument each restores through.
HEADER_FIELDS = {
    "ContentType": "content_type",
    "ContentEncoding": "content_encoding",
    "ContentDisposition": "content_disposition",
    "ContentLanguage": "content_language",
    "CacheControl": "cache_control",
}

# What S3 answers when a listed key, or the listed version of it, no longer exists.
VANISHED_CODES = ("NoSuchKey", "NoSuchVersion", "404")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket[/prefix]`` -> (bucket, prefix)."""
    if not url.startswith("s3://") or len(url) <= len("s3://"):
        raise SourceError(f"{url!r} is not an s3://bucket[/prefix] URL")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    return bucket, prefix


class S3Source(Source):
    kind: Literal["s3", "local"] = "s3"
    has_tags = True

    def __init__(
        self,
        url: str,
        key_filter: KeyFilter | None = None,
        s3: Any = None,
        role_arn: str | None = None,
        inventory: InventoryReport | None = None,
    ) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        # The role is how the bucket is read, not what it is: the url (the source's identity, which incremental
        # backups match on) is the same either way.
        self.url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self.filter = key_filter or KeyFilter()
        self.role_arn = role_arn
        # Listed from its newest S3 Inventory report rather than by ListObjects (read with the source's client).
        self.inventory = inventory
        self._s3 = s3
        # Read-ahead threads ask for the client at once: one of them makes it (one AssumeRole, one client).
        self._making = threading.Lock()

    @property
    def s3(self) -> Any:
        """The client, made on first use: a step that only needs the source's identity (Commit) must not need
        the right to assume its role."""
        if self._s3 is not None:
            return self._s3
        with self._making:
            if self._s3 is not None:
                return self._s3
            if not self.role_arn:
                self._s3 = client("s3")
            else:
                try:
                    self._s3 = role_client("s3", self.role_arn)
                except SourceError as exc:
                    raise SourceError(f"source bucket {self.bucket}: {exc}") from None
        return self._s3

    def _error(self, exc: ClientError, listed: ObjectEntry | None = None) -> SourceError:
        error: dict[str, Any] = dict(exc.response.get("Error", {}))
        code = error.get("Code", "")
        where = f"s3://{self.bucket}/{listed.key}" if listed else f"bucket {self.bucket}"
        if code == "NoSuchBucket":
            return SourceError(f"source bucket {self.bucket} does not exist")
        if code in ("AccessDenied", "403"):
            return SourceError(f"{where}: access denied")
        if listed and code in VANISHED_CODES:
            version = f" (version {listed.version_id})" if listed.version_id else ""
            return ObjectVanished(f"{where}{version}: deleted after the listing ({code})")
        if listed and code == "InvalidObjectState":
            # S3's error names the storage class and, for Intelligent-Tiering, the archive tier (AccessTier).
            storage_class = error.get("StorageClass") or listed.storage_class or "an archive tier"
            tier = f" ({error['AccessTier']})" if error.get("AccessTier") else ""
            return ObjectArchived(
                listed.key,
                f"{storage_class}{tier}",
                f"{where}: storage class {storage_class}{tier} must be restored from the archive before it is read",
            )
        return SourceError(f"{where}: {code or exc}")

    def _versioned(self) -> bool:
        try:
            status = self.s3.get_bucket_versioning(Bucket=self.bucket).get("Status")
        except ClientError as exc:
            raise self._error(exc) from None
        return status in ("Enabled", "Suspended")

    def list(self) -> Iterator[ObjectEntry]:
        """Current objects in key order, listed in parallel by prefix partitions (:mod:`.s3_listing`), or read from
        the source's inventory report when it names one (:mod:`.s3_inventory`). On a versioned bucket the listing
        also yields version ids (ListObjectVersions)."""
        if self.inventory is not None:
            yield from self._inventoried(self.inventory)
            return
        try:
            versioned = self._versioned()
            for item in OrderedListing(self.s3, self.bucket, self.prefix, versioned):
                if self.filter(item["Key"]):
                    yield self._entry(item, item.get("VersionId") if versioned else None)
        except ClientError as exc:
            raise self._error(exc) from None

    def _inventoried(self, report: InventoryReport) -> Iterator[ObjectEntry]:
        """The current objects of the newest complete inventory report, under the prefix and through the filter,
        sorted by key (objects deleted since the report are found vanished when a worker reads them)."""
        inventory = Inventory(self.s3, report, self.bucket)
        _, manifest = inventory.newest()
        rows = (row for row in inventory.rows(manifest) if row[0].startswith(self.prefix) and self.filter(row[0]))
        for key, size, etag, version_id, modified, storage_class in sorted_rows(rows):
            yield ObjectEntry(
                key=key,
                size=size,
                etag=etag,
                version_id=version_id,
                last_modified=modified,  # ISO 8601: pydantic parses it
                storage_class=storage_class,
            )

    @staticmethod
    def _entry(item: dict[str, Any], version_id: str | None) -> ObjectEntry:
        return ObjectEntry(
            key=item["Key"],
            size=item["Size"],
            etag=item.get("ETag"),
            version_id=None if version_id in (None, "null") else version_id,
            last_modified=item.get("LastModified"),
            storage_class=item.get("StorageClass"),
        )

    @contextmanager
    def open(self, listed: ObjectEntry) -> Iterator[tuple[Readable, ObjectEntry]]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": listed.key}
        if listed.version_id:
            args["VersionId"] = listed.version_id
        try:
            response = self.s3.get_object(**args)
            # GetObject reports how many tags there are: skip the tagging request (half of all requests in a
            # bucket of small objects) when there are none.
            tag_set = self.s3.get_object_tagging(**args).get("TagSet", []) if response.get("TagCount") else []
        except ClientError as exc:
            raise self._error(exc, listed) from None
        entry = listed.model_copy()
        for header, field in HEADER_FIELDS.items():
            setattr(entry, field, response.get(header))
        if response.get("Expires"):
            entry.expires = str(response.get("ExpiresString") or response["Expires"])
        entry.metadata = dict(response.get("Metadata", {}))
        entry.tags = {t["Key"]: t["Value"] for t in tag_set}
        # What was read is authoritative: the object may have changed between the listing and the GET.
        entry.size = response["ContentLength"]
        entry.etag = response.get("ETag", entry.etag)
        entry.last_modified = response.get("LastModified", entry.last_modified)
        version = response.get("VersionId")
        entry.version_id = None if version in (None, "null") else version
        body = response["Body"]
        try:
            yield body, entry
        finally:
            body.close()

    def read_tags(self, entry: ObjectEntry) -> dict[str, str]:
        """GetObjectTagging of the entry's version: one request, whatever the object's size or storage class."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": entry.key}
        if entry.version_id:
            args["VersionId"] = entry.version_id
        try:
            tag_set = self.s3.get_object_tagging(**args).get("TagSet", [])
        except ClientError as exc:
            raise self._error(exc, entry) from None
        return {t["Key"]: t["Value"] for t in tag_set}
