"""Restore drills: prove that a recovery point restores, by restoring it into scratch space and comparing.

A drill restores every object of a recovery point (sampled at random, or given) under a fresh scratch prefix of
an S3 bucket or a fresh directory, reads each restored object back, and compares its size and BLAKE3 hash with
the size in the manifest and the hash of the object recomposed from its chunks as read from the vault. Then it
deletes what it wrote. Table recovery points restore their segment streams as objects and are compared the same
way (a drill into a scratch table is not implemented).

A drill is cut like a check (vaultline/operations/check.py) so that the Maintenance state machine can fan it out and
the CLI runs the same pieces in one process: :func:`drill_batches` streams the recovery point's entries into
batches bounded by count and bytes; :func:`drill_entries` restores and compares one batch, a slice at a time, and
stops when its time budget runs low (:class:`DrillCursor` says where to go on); :func:`clean_scratch` deletes the copy.

Ceilings: one object is restored, read back and hashed within one invocation (streamed, so memory holds a chunk
and a read buffer, but the time grows with the object: at ~100 MB/s for each of the three passes, objects up to
some 25 GB fit a 15-minute Lambda); cleaning the scratch copy lists and deletes it 1,000 keys a request in one
invocation (about a million objects in a few minutes).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import blake3
from botocore.exceptions import ClientError
from pydantic import Field

from vaultline.aws import client
from vaultline.errors import RecoveryPointNotFound, VaultlineError
from vaultline.model import VaultlineModel
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.repository.manifest import (
    ObjectEntry,
    RecoveryPoint,
    list_recovery_point_ids,
    resolve_recovery_point,
)
from vaultline.repository.vault import Vault
from vaultline.sources.s3 import parse_s3_url
from vaultline.targets import open_target

# One drill work item: restored, read back and compared in about the time a restore worker's batch takes.
ENTRIES_PER_ITEM = 1000
BYTES_PER_ITEM = 4 << 30
# A slice of a batch restored together (a directory target maps collisions within it) before the budget is asked.
SLICE_ENTRIES = 100
SLICE_BYTES = 256 << 20
LISTED = 50  # mismatches and unmappable keys named; counts are complete
READ_BLOCK = 8 << 20


class DrillTally(VaultlineModel):
    """What a drill (or one batch of it) restored and found."""

    objects: int = 0
    bytes: int = 0
    verified: int = 0
    mismatches: list[str] = Field(default_factory=list)
    mismatch_count: int = 0
    unmappable: list[str] = Field(default_factory=list)
    unmappable_count: int = 0

    def mismatch(self, message: str) -> None:
        self.mismatch_count += 1
        if len(self.mismatches) < LISTED:
            self.mismatches.append(message)

    def add(self, other: DrillTally) -> None:
        """Add ``other``'s counts and as many of its keys as fit."""
        self.objects += other.objects
        self.bytes += other.bytes
        self.verified += other.verified
        self.mismatches += other.mismatches[: max(0, LISTED - len(self.mismatches))]
        self.mismatch_count += other.mismatch_count
        self.unmappable += other.unmappable[: max(0, LISTED - len(self.unmappable))]
        self.unmappable_count += other.unmappable_count


class DrillReport(VaultlineModel):
    """What a drill restored, where, and the mismatches it found (the first ``LISTED``); ``ok`` when none."""

    recovery_point: str
    scratch: str
    objects: int = 0
    bytes: int = 0
    verified: int = 0
    mismatches: list[str] = Field(default_factory=list)
    mismatch_count: int = 0
    unmappable: list[str] = Field(default_factory=list)
    cleaned_up: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.mismatch_count == 0 and not self.mismatches


class DrillCursor(VaultlineModel):
    """Where a drill item goes on when its time budget ran out, with what it found so far."""

    done: bool = False
    position: int = 0
    tally: DrillTally = Field(default_factory=DrillTally)


def _expected_hash(vault: Vault, entry: ObjectEntry) -> str:
    hasher = blake3.blake3()
    for chunk in entry.chunks:
        hasher.update(vault.read_blob(bytes.fromhex(chunk)))
    return hasher.hexdigest()


def sample_recovery_point(vault: Vault, recovery_point: str | None, rng: random.Random | None = None) -> RecoveryPoint:
    """``recovery_point``, or one sampled at random."""
    if recovery_point is None:
        ids = list_recovery_point_ids(vault)
        if not ids:
            raise RecoveryPointNotFound(f"{vault.url} holds no recovery points to drill")
        recovery_point = (rng or random.SystemRandom()).choice(ids)
    return resolve_recovery_point(vault, recovery_point)


def scratch_url(base: str, rp_id: str) -> str:
    """A fresh name per drill: the comparison must never read objects left by an earlier drill."""
    return f"{base.rstrip('/')}/vaultline-drill-{rp_id}-{os.urandom(3).hex()}"


def _read_restored(scratch: str, key: str) -> tuple[int, str] | None:
    """(size, BLAKE3) of a restored object, read in blocks; None if it is not there."""
    hasher, size = blake3.blake3(), 0
    if scratch.startswith("s3://"):
        bucket, prefix = parse_s3_url(scratch)
        try:
            body = client("s3").get_object(Bucket=bucket, Key=f"{prefix.strip('/')}/{key}")["Body"]
        except ClientError:
            return None
        for block in body.iter_chunks(READ_BLOCK):
            hasher.update(block)
            size += len(block)
        return size, hasher.hexdigest()
    path = Path(scratch).joinpath(*key.split("/"))
    if not path.is_file():
        return None
    with path.open("rb") as file:
        while block := file.read(READ_BLOCK):
            hasher.update(block)
            size += len(block)
    return size, hasher.hexdigest()


def clean_scratch(scratch: str) -> None:
    """Delete a drill's scratch copy (1,000 keys a request)."""
    if scratch.startswith("s3://"):
        bucket, prefix = parse_s3_url(scratch)
        s3 = client("s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.strip("/") + "/"):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    else:
        shutil.rmtree(scratch, ignore_errors=True)


def drill_batches(vault: Vault, rp: RecoveryPoint) -> Iterator[list[ObjectEntry]]:
    """The recovery point's entries in batches of at most ``ENTRIES_PER_ITEM`` entries and ``BYTES_PER_ITEM``
    bytes (an object larger than that is a batch of its own), streamed from the manifest."""
    batch: list[ObjectEntry] = []
    size = 0
    for entry in select_entries(vault, rp):
        if batch and (len(batch) >= ENTRIES_PER_ITEM or size + entry.size > BYTES_PER_ITEM):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry.size
    if batch:
        yield batch


def _slices(entries: list[ObjectEntry], start: int) -> Iterator[tuple[int, int]]:
    """(start, end) of the slices of ``entries`` from ``start`` on."""
    while start < len(entries):
        end, size = start, 0
        while end < len(entries) and end - start < SLICE_ENTRIES and (end == start or size < SLICE_BYTES):
            size += entries[end].size
            end += 1
        yield start, end
        start = end


def drill_entries(
    vault: Vault,
    entries: list[ObjectEntry],
    scratch: str,
    cursor: DrillCursor | None = None,
    more: Callable[[], bool] | None = None,
) -> DrillCursor:
    """Restore ``entries`` under ``scratch`` from ``cursor`` on, a slice at a time, reading each object back and
    comparing its size and hash with the manifest and the chunks in the vault; return the tally ``done``, or the
    cursor to go on from once ``more()`` turned false (one slice is always restored: every call makes progress).
    Restoring a slice again is harmless: the scratch prefix is the drill's own."""
    cursor = cursor or DrillCursor()
    tally = cursor.tally
    target = open_target(scratch)
    for start, end in _slices(entries, cursor.position):
        if start > cursor.position and more is not None and not more():
            return DrillCursor(position=start, tally=tally)
        piece = entries[start:end]
        try:
            outcome = restore_entries(vault, piece, target)
        except VaultlineError as exc:
            tally.mismatch(f"restore failed: {exc}")
            continue
        tally.objects += outcome.stats.objects
        tally.bytes += outcome.stats.bytes
        skipped = {key for key, _ in outcome.unmappable}
        tally.unmappable_count += len(skipped)
        tally.unmappable += sorted(skipped)[: max(0, LISTED - len(tally.unmappable))]
        for entry in piece:
            if entry.key in skipped or entry.key.endswith("/"):
                continue
            _compare(vault, scratch, entry, tally)
    return DrillCursor(done=True, position=len(entries), tally=tally)


def _compare(vault: Vault, scratch: str, entry: ObjectEntry, tally: DrillTally) -> None:
    try:
        restored = _read_restored(scratch, entry.key)
        if restored is None:
            tally.mismatch(f"{entry.key}: not found in the scratch copy")
        elif restored[0] != entry.size:
            tally.mismatch(f"{entry.key}: restored {restored[0]} bytes, manifest says {entry.size}")
        elif restored[1] != _expected_hash(vault, entry):
            tally.mismatch(f"{entry.key}: restored bytes differ from the chunks in the vault")
        else:
            tally.verified += 1
    except VaultlineError as exc:
        tally.mismatch(f"{entry.key}: {exc}")


def report_of(rp_id: str, scratch: str, tally: DrillTally, cleaned_up: bool, seconds: float) -> DrillReport:
    """A drill's report from its tally."""
    return DrillReport(
        recovery_point=rp_id,
        scratch=scratch,
        objects=tally.objects,
        bytes=tally.bytes,
        verified=tally.verified,
        mismatches=tally.mismatches,
        mismatch_count=tally.mismatch_count,
        unmappable=tally.unmappable,
        cleaned_up=cleaned_up,
        seconds=round(seconds, 3),
    )


def restore_drill(
    vault: Vault,
    scratch_base: str,
    recovery_point: str | None = None,
    cleanup: bool = True,
    rng: random.Random | None = None,
) -> DrillReport:
    """Restore ``recovery_point`` (default: one sampled at random) under ``scratch_base`` (``s3://bucket/prefix``
    or a directory), compare every object with its manifest, and delete the scratch copy (unless ``cleanup`` is
    False): the pieces the Maintenance workflow fans out, run in this process, one batch held at a time."""
    clock = time.monotonic()
    rp = sample_recovery_point(vault, recovery_point, rng)
    scratch = scratch_url(scratch_base, rp.id)
    tally = DrillTally()
    try:
        for batch in drill_batches(vault, rp):
            tally.add(drill_entries(vault, batch, scratch).tally)
    except VaultlineError as exc:
        tally.mismatch(f"restore failed: {exc}")
    finally:
        if cleanup:
            clean_scratch(scratch)
    return report_of(rp.id, scratch, tally, cleanup, time.monotonic() - clock)
