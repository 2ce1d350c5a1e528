"""An S3 bucket (and prefix) as a restore target, with metadata and tags; large objects in multipart uploads."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from vaultline.aws import client, error_code
from vaultline.errors import TargetError
from vaultline.repository.manifest import ObjectEntry
from vaultline.sources.s3 import HEADER_FIELDS, parse_s3_url
from vaultline.targets.base import Existing, Target

MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
# Parts uploaded at once while the next one fills: one PUT's latency no longer stalls the restore of a large object.
# What a multipart write holds is bounded by (PARTS_IN_FLIGHT + 1) parts, 80 MiB at the default part size.
PARTS_IN_FLIGHT = 4


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
            code = error_code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise TargetError(f"target bucket {self.bucket} does not exist") from None
            raise TargetError(f"target bucket {self.bucket}: {code or exc}") from None

    def existing(self, entry: ObjectEntry, key: str) -> Existing | None:
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            code = error_code(exc)
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
            code = error_code(exc)
            raise TargetError(f"s3://{self.bucket}/{self.prefix}{key}: {code or exc}") from None

    def _multipart(self, args: dict[str, Any], chunks: Iterable[bytes]) -> None:
        """Upload the object in parts, :data:`PART_UPLOADS` at once: a part's request latency and transfer overlap
        the next part's chunks being read and decompressed. Memory: the parts in flight and the one being filled."""
        upload_id = self.s3.create_multipart_upload(**args)["UploadId"]
        target = {"Bucket": args["Bucket"], "Key": args["Key"], "UploadId": upload_id}
        uploading: deque[Future[dict[str, Any]]] = deque()
        parts: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="vl-part") as pool:
            try:
                buffer = bytearray()
                number = 0
                for chunk in chunks:
                    buffer += chunk
                    if len(buffer) >= PART_SIZE:
                        number += 1
                        uploading.append(pool.submit(self._part, target, number, bytes(buffer)))
                        buffer.clear()
                        while len(uploading) >= PARTS_IN_FLIGHT:
                            parts.append(uploading.popleft().result())
                if buffer or not number:
                    number += 1
                    uploading.append(pool.submit(self._part, target, number, bytes(buffer)))
                while uploading:
                    parts.append(uploading.popleft().result())
                self.s3.complete_multipart_upload(**target, MultipartUpload={"Parts": parts})
            except BaseException:
                # Never leave a half-uploaded object billing storage in the target bucket: the parts still in
                # flight settle first, so that none lands after the abort.
                for future in uploading:
                    future.cancel()
                wait(uploading)
                self.s3.abort_multipart_upload(**target)
                raise

    def _part(self, target: dict[str, Any], number: int, body: bytes) -> dict[str, Any]:
        response = self.s3.upload_part(**target, PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": response["ETag"]}
