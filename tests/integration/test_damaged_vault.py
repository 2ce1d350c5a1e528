"""Damage to a vault (flipped byte, missing pack, truncated index or pack) is detected by check and by restore."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vaultline.cli.main import main
from vaultline.errors import IntegrityError, ObjectMissing, VaultlineError
from vaultline.operations.backup import run_backup
from vaultline.operations.check import check_vault
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.repository.layout import pack_key
from vaultline.repository.manifest import RecoveryPoint, iter_entries
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.storage import LocalStorage
from vaultline.targets import DirectoryTarget

MiB = 1024 * 1024


@pytest.fixture
def backed_up(
    s3: Any, make_bucket: Callable[..., str], tmp_path: Path, rand: Callable[[int, int], bytes]
) -> tuple[Path, RecoveryPoint]:
    """A local-directory vault holding one recovery point of a small bucket (random and compressible objects)."""
    make_bucket("source")
    s3.put_object(Bucket="source", Key="random.bin", Body=rand(2 * MiB, 1))
    s3.put_object(Bucket="source", Key="text.txt", Body=b"compressible text " * 50_000)
    s3.put_object(Bucket="source", Key="tiny", Body=b"t")
    root = tmp_path / "vault"
    vault = Vault.init(LocalStorage(root))
    rp = run_backup(vault, open_source("s3://source"))
    return root, rp


def pack_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "data").rglob("*") if p.is_file())


def data_chunk_location(root: Path, rp: RecoveryPoint, key: str) -> tuple[Path, int, int]:
    """The pack file, offset and stored length of the first chunk of ``key``."""
    vault = Vault.open(str(root))
    entry = next(e for e in iter_entries(vault, rp) if e.key == key)
    location = vault.index.get(bytes.fromhex(entry.chunks[0]))
    assert location is not None
    return root / pack_key(location.pack_id), location.entry.offset, location.entry.stored_length


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_sound_vault_passes_check_with_and_without_read_data(
    backed_up: tuple[Path, RecoveryPoint], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _rp = backed_up
    assert main(["--vault", str(root), "check"]) == 0
    assert main(["--vault", str(root), "check", "--read-data"]) == 0
    report = check_vault(Vault.open(str(root)), read_data=True)
    assert report.errors == [] and report.warnings == []
    assert report.recovery_points == 1
    assert report.objects == 3
    assert report.packs_read == report.packs == len(pack_files(root))


@pytest.mark.parametrize("key", ["random.bin", "text.txt", "tiny"])
def test_flipped_byte_in_a_pack_is_detected_by_read_data_and_by_restore(
    backed_up: tuple[Path, RecoveryPoint], tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    root, rp = backed_up
    path, offset, length = data_chunk_location(root, rp, key)
    flip_byte(path, offset + length // 2)

    report = check_vault(Vault.open(str(root)), read_data=True)
    assert any("does not hash to its name" in e for e in report.errors)
    assert any(key_error for key_error in report.errors if "blob" in key_error)
    assert main(["--vault", str(root), "check", "--read-data", "--json"]) == 1

    vault = Vault.open(str(root))
    with pytest.raises(IntegrityError):
        restore_entries(vault, select_entries(vault, rp, [key]), DirectoryTarget(tmp_path / "out"))
    assert not (tmp_path / "out" / key).exists()  # a corrupt object is never written half or wrong

    capsys.readouterr()
    assert main(["--vault", str(root), "restore", rp.id, "--to", str(tmp_path / "cli-out"), "--include", key]) == 1
    assert "vaultline: error:" in capsys.readouterr().err


def test_flipped_byte_in_a_pack_header_is_detected_by_read_data(backed_up: tuple[Path, RecoveryPoint]) -> None:
    root, _ = backed_up
    path = pack_files(root)[0]
    flip_byte(path, path.stat().st_size - 20)
    report = check_vault(Vault.open(str(root)), read_data=True)
    assert not report.ok


def test_missing_pack_is_detected_by_structure_check_and_by_restore(
    backed_up: tuple[Path, RecoveryPoint], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, rp = backed_up
    path, _, _ = data_chunk_location(root, rp, "random.bin")
    path.unlink()

    report = check_vault(Vault.open(str(root)))
    assert any("missing from storage" in e for e in report.errors)
    assert any(rp.id in e for e in report.errors), report.errors
    assert main(["--vault", str(root), "check"]) == 1
    assert "missing" in capsys.readouterr().err

    vault = Vault.open(str(root))
    with pytest.raises(ObjectMissing):
        restore_entries(vault, select_entries(vault, rp, ["random.bin"]), DirectoryTarget(tmp_path / "out"))
    assert main(["--vault", str(root), "restore", "latest", "--to", str(tmp_path / "cli")]) == 1


def test_truncated_pack_is_detected_by_check_and_by_restore(
    backed_up: tuple[Path, RecoveryPoint], tmp_path: Path
) -> None:
    root, rp = backed_up
    path, offset, length = data_chunk_location(root, rp, "random.bin")
    path.write_bytes(path.read_bytes()[: offset + length // 2])
    assert not check_vault(Vault.open(str(root)), read_data=True).ok
    vault = Vault.open(str(root))
    with pytest.raises(IntegrityError, match="truncated"):
        restore_entries(vault, select_entries(vault, rp, ["random.bin"]), DirectoryTarget(tmp_path / "out"))


def test_truncated_index_is_detected_by_check_and_by_restore(
    backed_up: tuple[Path, RecoveryPoint], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, rp = backed_up
    (index_file,) = sorted((root / "index").iterdir())
    index_file.write_bytes(index_file.read_bytes()[:-7])

    report = check_vault(Vault.open(str(root)))
    assert any("corrupt index" in e for e in report.errors)
    assert main(["--vault", str(root), "check"]) == 1
    with pytest.raises(IntegrityError, match="corrupt index"):
        restore_entries(
            Vault.open(str(root)), select_entries(Vault.open(str(root)), rp), DirectoryTarget(tmp_path / "o")
        )
    capsys.readouterr()
    assert main(["--vault", str(root), "restore", rp.id, "--to", str(tmp_path / "cli")]) == 1
    assert "corrupt index" in capsys.readouterr().err


def test_corrupt_manifest_is_reported_by_check(backed_up: tuple[Path, RecoveryPoint]) -> None:
    root, rp = backed_up
    manifest = root / "recovery-points" / rp.id
    manifest.write_bytes(manifest.read_bytes()[:-4])
    report = check_vault(Vault.open(str(root)))
    assert any(rp.id in e for e in report.errors)


def test_damage_never_restores_wrong_bytes(
    backed_up: tuple[Path, RecoveryPoint], tmp_path: Path, rand: Callable[[int, int], bytes]
) -> None:
    # Flip each byte position class of the first pack in turn; every restore either fails or is bit-exact.
    root, rp = backed_up
    expected = {"random.bin": rand(2 * MiB, 1), "text.txt": b"compressible text " * 50_000, "tiny": b"t"}
    path = pack_files(root)[0]
    original = path.read_bytes()
    for offset in range(0, len(original), max(1, len(original) // 23)):
        flip_byte(path, offset)
        out = tmp_path / f"out-{offset}"
        vault = Vault.open(str(root))
        with contextlib.suppress(VaultlineError):
            restore_entries(vault, select_entries(vault, rp), DirectoryTarget(out))
        for key, data in expected.items():
            if (out / key).exists():
                assert (out / key).read_bytes() == data
        path.write_bytes(original)
