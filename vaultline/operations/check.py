"""Verifying a vault: structure (every referenced blob is indexed and its pack exists) and, with read-data,
every blob of every pack (decrypts, decompresses, hashes to its id; every pack hashes to its name)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import blake3
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vaultline.errors import UsageError, VaultlineError
from vaultline.repository.compact_index import KEY_SIZE
from vaultline.repository.layout import pack_key
from vaultline.repository.manifest import iter_entries, list_recovery_point_ids, load_recovery_point
from vaultline.repository.packs import list_pack_ids, read_pack_entries
from vaultline.repository.vault import Vault


class CheckReport(BaseModel):
    """What `check` found; ``errors`` empty means the vault is sound."""

    recovery_points: int = 0
    objects: int = 0
    packs: int = 0
    blobs: int = 0
    packs_read: int = 0
    bytes_read: int = 0
    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


SUBSET_EXPECTED = "expected n/m (1 <= n <= m, e.g. 2/7) or a percentage (e.g. 10%)"


class PackSubset(BaseModel):
    """The packs a read-data check reads: part ``part`` of ``parts`` (``n/m``), or a random ``share`` (``P%``).

    One parsed form for the CLI's ``--read-data-subset``, the Maintenance input's ``verify.subset`` and
    :func:`check_vault`; it parses from its text (``PackSubset.parse("2/7")``, or a string where a model is
    validated) and prints as it (``str(subset) == "2/7"``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    part: int = Field(default=1, ge=1)
    parts: int = Field(default=1, ge=1)
    share: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        try:
            if text.endswith("%"):
                share = float(text[:-1]) / 100
                if 0 < share <= 1:
                    return {"share": share}
            else:
                n_text, sep, m_text = text.partition("/")
                n, m = int(n_text), int(m_text)
                if sep and 1 <= n <= m:
                    return {"part": n, "parts": m}
        except ValueError:
            pass
        raise ValueError(f"{value!r}: {SUBSET_EXPECTED}")

    @model_validator(mode="after")
    def _part_of_parts(self) -> PackSubset:
        if self.part > self.parts:
            raise ValueError(f"part {self.part} of {self.parts}: {SUBSET_EXPECTED}")
        return self

    @classmethod
    def parse(cls, spec: str) -> PackSubset:
        """``n/m`` or ``P%`` as a subset; raises UsageError (naming ``--read-data-subset``) otherwise."""
        try:
            return cls.model_validate(spec)
        except ValidationError:
            raise UsageError(f"--read-data-subset {spec!r}: {SUBSET_EXPECTED}") from None

    @classmethod
    def rotating(cls, parts: int, run: int | None = None, now: datetime | None = None) -> PackSubset:
        """Part ``run % parts + 1`` of ``parts`` (``run`` defaults to the day number): ``parts`` consecutive runs
        read every pack once."""
        counter = run if run is not None else (now or datetime.now()).toordinal()
        return cls(part=counter % parts + 1, parts=parts)

    def __str__(self) -> str:
        return f"{self.part}/{self.parts}" if self.share is None else f"{self.share * 100:g}%"

    def select(self, pack_ids: list[str], rng: random.Random | None = None) -> list[str]:
        """The packs this subset reads. ``n/m`` takes the packs whose id, read as a number, is ``n - 1`` modulo
        ``m``: ids are hashes, so the parts are even, stable across runs, and ``1/m`` .. ``m/m`` together read
        every pack once. ``P%`` samples that share of packs at random (at least one)."""
        if self.share is None:
            return [p for p in pack_ids if int(p, 16) % self.parts == self.part - 1]
        count = min(len(pack_ids), max(1, math.ceil(len(pack_ids) * self.share)))
        return sorted((rng or random.SystemRandom()).sample(sorted(pack_ids), count)) if pack_ids else []


def check_vault(
    vault: Vault,
    read_data: bool = False,
    progress: Callable[[int, int], None] | None = None,
    read_data_subset: PackSubset | None = None,
) -> CheckReport:
    """Check ``vault``; collect every problem rather than stopping at the first. ``read_data_subset`` reads only
    that part of the packs (see :meth:`PackSubset.select`)."""
    report = CheckReport()
    try:
        index = vault.reload_index()
    except VaultlineError as exc:
        report.errors.append(str(exc))
        return report
    stored = list_pack_ids(vault.storage)
    report.packs = len(index.packs)
    report.blobs = len(index)
    for pack_id in index.packs:
        if pack_id not in stored:
            report.errors.append(f"pack {pack_id} is indexed but missing from storage")
    for pack_id in stored.keys() - index.packs.keys():
        report.warnings.append(f"pack {pack_id} is not indexed (left by an interrupted backup; prune removes it)")

    for rp_id in list_recovery_point_ids(vault):
        report.recovery_points += 1
        try:
            rp = load_recovery_point(vault, rp_id)
            missing = [b for b in rp.entry_blobs if bytes.fromhex(b) not in index]
            if missing:
                report.errors.append(f"recovery point {rp_id}: {len(missing)} manifest blobs are missing")
                continue
            for entry in iter_entries(vault, rp):
                report.objects += 1
                absent = [c for c in entry.chunks if bytes.fromhex(c) not in index]
                if absent:
                    report.errors.append(
                        f"recovery point {rp_id}: {entry.key}: {len(absent)} chunks are missing (first {absent[0]})"
                    )
                    continue
                gone = {index.get(bytes.fromhex(c)).pack_id for c in entry.chunks} - stored.keys()  # type: ignore[union-attr]
                if gone:
                    report.errors.append(f"recovery point {rp_id}: {entry.key}: pack {sorted(gone)[0]} is missing")
        except VaultlineError as exc:
            report.errors.append(f"recovery point {rp_id}: {exc}")

    if read_data or read_data_subset is not None:
        readable = [p for p in index.packs if p in stored]
        if read_data_subset is not None and not read_data:
            readable = read_data_subset.select(readable)
        _read_all_packs(vault, readable, report, progress)
    return report


def _read_all_packs(
    vault: Vault, pack_ids: list[str], report: CheckReport, progress: Callable[[int, int], None] | None
) -> None:
    index = vault.index

    def verify(pack_id: str) -> tuple[int, list[str]]:
        problems: list[str] = []
        what = f"pack {pack_id}"
        try:
            data = vault.storage.get(pack_key(pack_id))
        except VaultlineError as exc:
            return 0, [str(exc)]
        if blake3.blake3(data).hexdigest() != pack_id:
            problems.append(f"{what}: content does not hash to its name (corrupt or tampered)")
        try:
            entries = read_pack_entries(data, vault.cipher, what)
        except VaultlineError as exc:
            return len(data), [*problems, str(exc)]
        # The whole index holds 16-byte keys (section 9.3): compare those.
        indexed = {e.id[:KEY_SIZE] for e in index.packs.get(pack_id, [])}
        if indexed != {e.id[:KEY_SIZE] for e in entries}:
            problems.append(f"{what}: header and index disagree on its blobs")
        view = memoryview(data)
        for entry in entries:
            try:
                vault.decode_blob(bytes(view[entry.offset : entry.offset + entry.stored_length]), entry, pack_id)
            except VaultlineError as exc:
                problems.append(str(exc))
        return len(data), problems

    with ThreadPoolExecutor(max_workers=4) as pool:
        for size, problems in pool.map(verify, pack_ids):
            report.packs_read += 1
            report.bytes_read += size
            report.errors.extend(problems)
            if progress:
                progress(1, size)
