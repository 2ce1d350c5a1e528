"""Restore drills: prove that a recovery point restores, by restoring it into scratch space and comparing.

A drill restores every object of a recovery point (sampled at random, or given) under a fresh scratch prefix of
an S3 bucket or a fresh directory, reads each restored object back, and compares its size and BLAKE3 hash with
the size in the manifest and the hash of the object recomposed from its chunks as read from the vault. Then it
deletes what it wrote. Table recovery points restore their segment streams as objects and are compared the same
way (a drill into a scratch table is not implemented).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import blake3
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from vaultline.aws import client
from vaultline.errors import RecoveryPointNotFound, VaultlineError
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.repository.manifest import ObjectEntry, list_recovery_point_ids, resolve_recovery_point
from vaultline.repository.vault import Vault
from vaultline.sources.s3 import parse_s3_url
from vaultline.targets import open_target


class DrillReport(BaseModel):
    """What a drill restored, where, and every mismatch it found; ``ok`` when there is none."""

    recovery_point: str
    scratch: str
    objects: int = 0
    bytes: int = 0
    verified: int = 0
    mismatches: list[str] = Field(default_factory=list)
    unmappable: list[str] = Field(default_factory=list)
    cleaned_up: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _expected_hash(vault: Vault, entry: ObjectEntry) -> str:
    hasher = blake3.blake3()
    for chunk in entry.chunks:
        hasher.update(vault.read_blob(bytes.fromhex(chunk)))
    return hasher.hexdigest()


def _scratch_url(base: str, rp_id: str) -> str:
    # A fresh name per drill: the comparison must never read objects left by an earlier drill.
    return f"{base.rstrip('/')}/vaultline-drill-{rp_id}-{os.urandom(3).hex()}"


def _read_restored(scratch: str, key: str) -> bytes | None:
    if scratch.startswith("s3://"):
        bucket, prefix = parse_s3_url(scratch)
        try:
            data: bytes = client("s3").get_object(Bucket=bucket, Key=f"{prefix.strip('/')}/{key}")["Body"].read()
            return data
        except ClientError:
            return None
    path = Path(scratch).joinpath(*key.split("/"))
    return path.read_bytes() if path.is_file() else None


def _clean(scratch: str) -> None:
    if scratch.startswith("s3://"):
        bucket, prefix = parse_s3_url(scratch)
        s3 = client("s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.strip("/") + "/"):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    else:
        shutil.rmtree(scratch, ignore_errors=True)


def restore_drill(
    vault: Vault,
    scratch_base: str,
    recovery_point: str | None = None,
    cleanup: bool = True,
    rng: random.Random | None = None,
) -> DrillReport:
    """Restore ``recovery_point`` (default: one sampled at random) under ``scratch_base`` (``s3://bucket/prefix``
    or a directory), compare every object with its manifest, and delete the scratch copy (unless ``cleanup`` is
    False)."""
    clock = time.monotonic()
    if recovery_point is None:
        ids = list_recovery_point_ids(vault)
        if not ids:
            raise RecoveryPointNotFound(f"{vault.url} holds no recovery points to drill")
        recovery_point = (rng or random.SystemRandom()).choice(ids)
    rp = resolve_recovery_point(vault, recovery_point)
    scratch = _scratch_url(scratch_base, rp.id)
    report = DrillReport(recovery_point=rp.id, scratch=scratch)
    try:
        entries = select_entries(vault, rp)
        outcome = restore_entries(vault, entries, open_target(scratch))
        report.objects, report.bytes = outcome.stats.objects, outcome.stats.bytes
        report.unmappable = [key for key, _ in outcome.unmappable]
        skipped = set(report.unmappable)
        for entry in entries:
            if entry.key in skipped or entry.key.endswith("/"):
                continue
            restored = _read_restored(scratch, entry.key)
            if restored is None:
                report.mismatches.append(f"{entry.key}: not found in the scratch copy")
            elif len(restored) != entry.size:
                report.mismatches.append(f"{entry.key}: restored {len(restored)} bytes, manifest says {entry.size}")
            elif blake3.blake3(restored).hexdigest() != _expected_hash(vault, entry):
                report.mismatches.append(f"{entry.key}: restored bytes differ from the chunks in the vault")
            else:
                report.verified += 1
    except VaultlineError as exc:
        report.mismatches.append(f"restore failed: {exc}")
    finally:
        if cleanup:
            _clean(scratch)
            report.cleaned_up = True
    report.seconds = round(time.monotonic() - clock, 3)
    return report
