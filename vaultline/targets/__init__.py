"""Restore targets: an S3 bucket (and prefix) with metadata and tags, or a local directory with safe paths."""

from __future__ import annotations

import os
import tempfile
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from vaultline.aws import client
from vaultline.errors import TargetError
from vaultline.repository.manifest import ObjectEntry
from vaultline.sources.local import path_of
from vaultline.sources.s3 import HEADER_FIELDS, parse_s3_url

NAME_MAX = 255  # bytes per path component on Linux, macOS and Windows file systems
MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024


Overwrite = Literal["never", "if-changed", "always"]
"""What a restore does with an object that already exists at the target (docs/cli.md, "restore")."""


@dataclass(frozen=True)
class Existing:
    """What is already at a target key: its size, and its ETag where the target has one."""

    size: int
    etag: str | None = None


class Target(ABC):
    """Where restored objects go."""

    url: str

    @abstractmethod
    def existing(self, entry: ObjectEntry, key: str) -> Existing | None:
        """What is at ``key`` now, or None when nothing is."""

    def open_existing(self, entry: ObjectEntry, key: str) -> BinaryIO | None:
        """The bytes at ``key`` when reading them is cheap (a local file); None where it is not (S3)."""
        return None

    @abstractmethod
    def write(self, entry: ObjectEntry, key: str, chunks: Iterable[bytes]) -> None:
        """Write one object from its chunks in order."""

    def plan(self, entries: list[ObjectEntry]) -> tuple[list[tuple[ObjectEntry, str]], list[tuple[str, str]]]:
        """Map entries to target keys; return (mapped, unmappable (key, reason))."""
        return [(e, e.key) for e in entries], []


class S3Target(Target):
    """Writes objects under ``s3://bucket/prefix/`` with their metadata, tags and storage class."""

    def __init__(self, url: str, s3: Any = None) -> None:
        self.bucket, prefix = parse_s3_url(url)
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{self.bucket}/{self.prefix}"
        self.s3 = s3 or client("s3")
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise TargetError(f"target bucket {self.bucket} does not exist") from None
            raise TargetError(f"target bucket {self.bucket}: {code or exc}") from None

    def existing(self, entry: ObjectEntry, key: str) -> Existing | None:
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            # HeadObject needs s3:GetObject, and without s3:ListBucket S3 answers 403 for a missing key too.
            raise TargetError(
                f"s3://{self.bucket}/{self.prefix}{key}: cannot tell whether it exists ({code}); --overwrite never "
                "and if-changed need s3:GetObject and s3:ListBucket on the target (--overwrite always needs neither)"
            ) from None
        return Existing(size=head["ContentLength"], etag=head.get("ETag"))

    def _args(self, entry: ObjectEntry, key: str) -> dict[str, Any]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.prefix + key, "Metadata": entry.metadata}
        for header, field in HEADER_FIELDS.items():
            value = getattr(entry, field)
            if value:
                args[header] = value
        if entry.expires:
            args["Expires"] = entry.expires
        if entry.tags:
            args["Tagging"] = urlencode(entry.tags)
        if entry.storage_class and entry.storage_class not in ("STANDARD",):
            args["StorageClass"] = entry.storage_class
        return args

    def write(self, entry: ObjectEntry, key: str, chunks: Iterable[bytes]) -> None:
        args = self._args(entry, key)
        try:
            if entry.size < MULTIPART_THRESHOLD:
                self.s3.put_object(Body=b"".join(chunks), **args)
            else:
                self._multipart(args, chunks)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise TargetError(f"s3://{self.bucket}/{self.prefix}{key}: {code or exc}") from None

    def _multipart(self, args: dict[str, Any], chunks: Iterable[bytes]) -> None:
        upload_id = self.s3.create_multipart_upload(**args)["UploadId"]
        target = {"Bucket": args["Bucket"], "Key": args["Key"], "UploadId": upload_id}
        parts: list[dict[str, Any]] = []
        try:
            buffer = bytearray()
            for chunk in chunks:
                buffer += chunk
                if len(buffer) >= PART_SIZE:
                    parts.append(self._part(target, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if buffer or not parts:
                parts.append(self._part(target, len(parts) + 1, bytes(buffer)))
            self.s3.complete_multipart_upload(**target, MultipartUpload={"Parts": parts})
        except BaseException:
            # Never leave a half-uploaded object billing storage in the target bucket.
            self.s3.abort_multipart_upload(**target)
            raise

    def _part(self, target: dict[str, Any], number: int, body: bytes) -> dict[str, Any]:
        response = self.s3.upload_part(**target, PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": response["ETag"]}


class DirectoryTarget(Target):
    """Writes objects as files under ``root``. Keys that cannot be a safe relative path are reported, not
    written: ``..`` or ``.`` components, absolute keys, empty components, NUL, components over 255 bytes, and keys
    that would collide with another key (``a`` and ``a/b``, or two keys equal after Unicode normalization)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TargetError(f"cannot create target directory {root}: {exc.strerror}") from None

    @staticmethod
    def unsafe_reason(key: str) -> str | None:
        """Why ``key`` cannot be a relative path under the target, or None if it can."""
        if not key:
            return "empty key"
        if "\x00" in key:
            return "contains a NUL character"
        if key.startswith("/"):
            return "absolute path"
        parts = key.rstrip("/").split("/")
        if any(p == "" for p in parts):
            return "empty path component (//)"
        if any(p in (".", "..") for p in parts):
            return "'.' or '..' path component"
        if any(len(os.fsencode(p)) > NAME_MAX for p in parts):
            return f"a path component is longer than {NAME_MAX} bytes"
        return None

    def plan(self, entries: list[ObjectEntry]) -> tuple[list[tuple[ObjectEntry, str]], list[tuple[str, str]]]:
        mapped: list[tuple[ObjectEntry, str]] = []
        rejected: list[tuple[str, str]] = []
        files: dict[str, str] = {}
        for entry in entries:
            reason = self.unsafe_reason(path_of(entry))
            if reason:
                rejected.append((entry.key, reason))
                continue
            if entry.key.endswith("/"):
                continue  # a folder marker: directories appear with the files under them
            files[entry.key] = entry.key
        folded: dict[str, str] = {}
        directories = {
            unicodedata.normalize("NFC", "/".join(k.split("/")[:i])).casefold()
            for k in files
            for i in range(1, k.count("/") + 1)
        }
        for entry in entries:
            key = entry.key
            if key not in files:
                continue
            fold = unicodedata.normalize("NFC", key).casefold()
            if fold in directories:
                rejected.append((key, "collides with a directory of the same name"))
            elif fold in folded:
                rejected.append((key, f"collides with {folded[fold]!r} on case- or normalization-insensitive disks"))
            else:
                folded[fold] = key
                mapped.append((entry, key))
        return mapped, rejected

    def _path(self, entry: ObjectEntry, key: str) -> Path:
        # A file name that was not UTF-8 is restored to its exact bytes (raw_key), not to its display key.
        relative = path_of(entry) if entry.raw_key else key
        return Path(os.path.normpath(self.root.joinpath(*relative.split("/"))))

    def existing(self, entry: ObjectEntry, key: str) -> Existing | None:
        path = self._path(entry, key)
        return Existing(size=path.stat().st_size) if path.is_file() else None

    def open_existing(self, entry: ObjectEntry, key: str) -> BinaryIO | None:
        try:
            return self._path(entry, key).open("rb")
        except OSError as exc:
            raise TargetError(f"cannot read {self._path(entry, key)}: {exc.strerror}") from None

    def write(self, entry: ObjectEntry, key: str, chunks: Iterable[bytes]) -> None:
        path = self._path(entry, key)
        # Belt and braces: the key was vetted by plan(), but never write outside the root whatever happens.
        if self.root not in path.parents:
            raise TargetError(f"{key}: refuses to write outside {self.root}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".vaultline-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    for chunk in chunks:
                        handle.write(chunk)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            if isinstance(entry.last_modified, datetime):
                stamp = entry.last_modified.timestamp()
                os.utime(path, (stamp, stamp))
        except OSError as exc:
            raise TargetError(f"cannot write {path}: {exc.strerror}") from None


def open_target(url: str) -> Target:
    """``s3://bucket[/prefix]`` or a directory path."""
    if url.startswith("s3://"):
        return S3Target(url)
    return DirectoryTarget(url)
