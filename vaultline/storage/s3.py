"""A vault in an S3 bucket under an optional prefix."""

from __future__ import annotations

import base64
import builtins
import zlib
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

from botocore.exceptions import ClientError

from vaultline.aws import client, error_code
from vaultline.errors import ObjectMissing, VaultError
from vaultline.storage.base import ObjectRetention, Storage, StoredObject

_MISSING = {"NoSuchKey", "404", "NotFound"}
_CONFLICT_RETRIES = 5


def _body(data: bytes) -> bytes:
    """The request body as bytes: a pack builder's reused bytearray is copied (16 MiB, milliseconds). With the
    checksum given, botocore hands the body on as it is, and not every transport takes a bytearray (moto's
    in-process one does not)."""
    return bytes(data) if isinstance(data, bytearray) else data


def crc32_args(data: bytes) -> dict[str, str]:
    """PutObject/UploadPart arguments that carry the body's CRC32, computed here. S3 still checks the body against
    it; without it botocore computes the checksum itself by streaming the body through its aws-chunked encoder in
    Python, which cost 0.14 s of CPU (holding the GIL) per 16 MiB pack, against ~10 ms for zlib here."""
    return {
        "ChecksumAlgorithm": "CRC32",
        "ChecksumCRC32": base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode(),
    }


class S3Storage(Storage):
    """Keys live under ``s3://bucket/prefix/``."""

    def __init__(self, bucket: str, prefix: str = "", s3: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.s3 = s3 or client("s3")

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _fail(self, exc: ClientError, key: str) -> VaultError:
        code = error_code(exc)
        if code in _MISSING:
            return ObjectMissing(f"{self.url}: {key} does not exist")
        if code == "NoSuchBucket":
            return VaultError(f"vault bucket {self.bucket} does not exist")
        return VaultError(f"{self.url}: {key}: {code or exc}")

    def _lock_args(self, key: str) -> dict[str, Any]:
        retention = self.lock_policy.retention_for(key) if self.lock_policy else None
        if retention is None:
            return {}
        args: dict[str, Any] = {}
        if retention.mode:
            args["ObjectLockMode"] = retention.mode
        if retention.retain_until:
            args["ObjectLockRetainUntilDate"] = retention.retain_until
        if retention.legal_hold:
            args["ObjectLockLegalHoldStatus"] = "ON"
        return args

    @cached_property
    def _lock_enabled(self) -> bool:
        try:
            config = self.s3.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            code = error_code(exc)
            if code == "ObjectLockConfigurationNotFoundError":
                return False  # no object is ever locked here
            # A denied or failed question is not an answer: taken for "no Object Lock", it would let a step skip
            # the retention it owes (or refuse settings the bucket can keep) with a misleading reason.
            raise VaultError(
                f"{self.url}: cannot tell whether bucket {self.bucket} has Object Lock "
                f"(GetObjectLockConfiguration: {code or exc})"
            ) from None
        return bool(config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled")

    def retention(self, key: str) -> ObjectRetention | None:
        if not self._lock_enabled:
            return None
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                return None
            raise self._fail(exc, key) from None
        mode = head.get("ObjectLockMode")
        until = head.get("ObjectLockRetainUntilDate")
        hold = head.get("ObjectLockLegalHoldStatus") == "ON"
        # An object without retention still answers (with its version id): extending a lock needs it.
        return ObjectRetention(mode=mode, retain_until=until, legal_hold=hold, version_id=head.get("VersionId"))

    @property
    def object_lock_enabled(self) -> bool:
        """Whether the bucket has S3 Object Lock (asked once)."""
        return self._lock_enabled

    def versions(self, key: str) -> builtins.list[bytes | None]:
        paginator = self.s3.get_paginator("list_object_versions")
        name = self._key(key)
        found: builtins.list[str] = []
        deleted = False
        try:
            # S3 lists the versions of a key newest first.
            for page in paginator.paginate(Bucket=self.bucket, Prefix=name):
                found += [v["VersionId"] for v in page.get("Versions", []) if v["Key"] == name]
                deleted |= any(m["Key"] == name and m.get("IsLatest") for m in page.get("DeleteMarkers", []))
            stored: builtins.list[bytes | None] = [
                self.s3.get_object(Bucket=self.bucket, Key=name, VersionId=version)["Body"].read()
                for version in reversed(found)
            ]
        except ClientError as exc:
            raise self._fail(exc, key) from None
        return [*stored, None] if deleted and stored else stored

    def retentions(self, key: str) -> builtins.list[ObjectRetention]:
        """The lock state of every stored version of ``key`` (delete markers have none), newest first."""
        if not self._lock_enabled:
            return []
        name = self._key(key)
        found: builtins.list[ObjectRetention] = []
        try:
            for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=name):
                for version in page.get("Versions", []):
                    if version["Key"] != name:
                        continue
                    head = self.s3.head_object(Bucket=self.bucket, Key=name, VersionId=version["VersionId"])
                    found.append(
                        ObjectRetention(
                            mode=head.get("ObjectLockMode"),
                            retain_until=head.get("ObjectLockRetainUntilDate"),
                            legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
                            version_id=version["VersionId"],
                        )
                    )
        except ClientError as exc:
            raise self._fail(exc, key) from None
        return found

    def extend_retention(self, key: str, retention: ObjectRetention) -> None:
        self.require_object_lock("extend a retention")
        args: dict[str, Any] = {"VersionId": retention.version_id} if retention.version_id else {}
        try:
            self.s3.put_object_retention(
                Bucket=self.bucket,
                Key=self._key(key),
                Retention={"Mode": retention.mode, "RetainUntilDate": retention.retain_until},
                **args,
            )
        except ClientError as exc:
            raise self._fail(exc, key) from None

    def require_object_lock(self, doing: str) -> None:
        if not self._lock_enabled:
            raise VaultError(
                f"{self.url}: cannot {doing}: bucket {self.bucket} has no Object Lock (it is enabled when a bucket "
                "is created, or later with PutObjectLockConfiguration on a versioned bucket)"
            )

    def legal_hold(self, key: str) -> bool:
        if not self._lock_enabled:
            return False
        try:
            answer = self.s3.get_object_legal_hold(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            code = error_code(exc)
            if code == "NoSuchObjectLockConfiguration":
                return False  # an object that never had a hold answers so
            raise self._fail(exc, key) from None
        return bool(answer.get("LegalHold", {}).get("Status") == "ON")

    def set_legal_hold(self, key: str, on: bool) -> bool:
        self.require_object_lock("change a legal hold")
        if self.legal_hold(key) == on:
            return False
        try:
            self.s3.put_object_legal_hold(
                Bucket=self.bucket, Key=self._key(key), LegalHold={"Status": "ON" if on else "OFF"}
            )
        except ClientError as exc:
            raise self._fail(exc, key) from None
        return True

    def put(self, key: str, data: bytes) -> None:
        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=_body(data), **crc32_args(data), **self._lock_args(key)
            )
        except ClientError as exc:
            raise self._fail(exc, key) from None

    def create(self, key: str, data: bytes) -> bool:
        # If-None-Match: * makes S3 refuse (412) a put over an existing object, atomically. A 409 means another
        # conditional write to the key is in flight: try again, and one of the two then sees the other's object.
        for _ in range(_CONFLICT_RETRIES):
            try:
                self.s3.put_object(
                    Bucket=self.bucket,
                    Key=self._key(key),
                    Body=_body(data),
                    IfNoneMatch="*",
                    **crc32_args(data),
                    **self._lock_args(key),
                )
                return True
            except ClientError as exc:
                code = error_code(exc)
                if code in ("PreconditionFailed", "412"):
                    return False
                if code not in ("ConditionalRequestConflict", "409"):
                    raise self._fail(exc, key) from None
        raise VaultError(f"{self.url}: {key}: concurrent creators kept conflicting; retry")

    def get(self, key: str) -> bytes:
        try:
            body: bytes = self.s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
            return body
        except ClientError as exc:
            raise self._fail(exc, key) from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            response = self.s3.get_object(
                Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{start + length - 1}"
            )
            data: bytes = response["Body"].read()
            return data
        except ClientError as exc:
            raise self._fail(exc, key) from None

    def get_tail(self, key: str, length: int) -> bytes:
        try:
            data: bytes = self.s3.get_object(Bucket=self.bucket, Key=self._key(key), Range=f"bytes=-{length}")[
                "Body"
            ].read()
            return data
        except ClientError as exc:
            raise self._fail(exc, key) from None

    def list(self, prefix: str) -> Iterator[StoredObject]:
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for item in page.get("Contents", []):
                    yield StoredObject(key=item["Key"][len(self.prefix) :], size=item["Size"])
        except ClientError as exc:
            raise self._fail(exc, prefix) from None

    def delete(self, key: str) -> None:
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            raise self._fail(exc, key) from None

    def delete_many(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        if len(keys) > 1000:
            raise ValueError(f"DeleteObjects takes at most 1,000 keys, not {len(keys)}")
        objects = [{"Key": self._key(key)} for key in keys]
        try:
            response = self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
        except ClientError as exc:
            raise self._fail(exc, keys[0]) from None
        # DeleteObjects answers 200 and lists per key what it refused (AccessDenied, a locked version, ...).
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise VaultError(
                f"{self.url}: {len(errors)} of {len(keys)} deletes refused, first "
                f"{first.get('Key', '')[len(self.prefix) :]}: {first.get('Code', '')} {first.get('Message', '')}"
            )

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                return False
            raise self._fail(exc, key) from None
