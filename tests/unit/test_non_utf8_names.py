"""A directory holding file names that are not valid UTF-8 backs up (display key + exact bytes in ``raw_key``)
and restores into a directory to the same bytes."""

from __future__ import annotations

import base64
import os
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaultline.errors import SourceError
from vaultline.operations.backup import run_backup
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.repository.manifest import iter_entries
from vaultline.repository.vault import Vault
from vaultline.sources import LocalSource
from vaultline.storage import LocalStorage
from vaultline.targets import DirectoryTarget


def _files(root: Path) -> dict[bytes, bytes]:
    """Every file under ``root`` by its relative path as bytes."""
    found = {}
    for dirpath, _, names in os.walk(os.fsencode(root)):
        for name in names:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, os.fsencode(root))] = Path(os.fsdecode(path)).read_bytes()
    return found


def _write(root: Path, relative: bytes, body: bytes) -> None:
    path = os.path.join(os.fsencode(root), relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(body)


def _round_trip(root: Path) -> tuple[dict[bytes, bytes], list[object]]:
    vault = Vault.init(LocalStorage(root / "vault"))
    rp = run_backup(vault, LocalSource(root / "src"))
    entries = select_entries(vault, rp)
    outcome = restore_entries(vault, entries, DirectoryTarget(root / "out"))
    assert outcome.unmappable == []
    return _files(root / "out"), list(iter_entries(vault, rp))


def test_latin1_and_broken_names_restore_to_the_same_bytes(tmp_path: Path) -> None:
    files = {b"caf\xe9.txt": b"latin-1 name", b"d\xff\xfe/inner.bin": b"in a bad directory", b"ok.txt": b"utf-8"}
    for relative, body in files.items():
        _write(tmp_path / "src", relative, body)

    restored, entries = _round_trip(tmp_path)

    assert restored == files
    by_key = {e.key: e for e in entries}  # type: ignore[attr-defined]
    assert set(by_key) == {"caf\\xe9.txt", "d\\xff\\xfe/inner.bin", "ok.txt"}
    assert base64.b64decode(by_key["caf\\xe9.txt"].raw_key) == b"caf\xe9.txt"
    assert by_key["ok.txt"].raw_key is None  # a UTF-8 name is recorded exactly as before


def test_a_second_backup_finds_a_non_utf8_name_unchanged(tmp_path: Path) -> None:
    _write(tmp_path / "src", b"caf\xe9.txt", b"x")
    vault = Vault.init(LocalStorage(tmp_path / "vault"))
    run_backup(vault, LocalSource(tmp_path / "src"))
    second = run_backup(vault, LocalSource(tmp_path / "src"))
    assert second.stats.objects_unchanged == 1 and second.stats.objects_read == 0


def test_a_utf8_name_equal_to_anothers_display_key_is_one_clear_error(tmp_path: Path) -> None:
    _write(tmp_path / "src", b"caf\xe9", b"raw")
    _write(tmp_path / "src", b"caf\\xe9", b"literal backslash")
    with pytest.raises(SourceError, match=r"have the same key 'caf\\\\xe9'; rename one"):
        run_backup(Vault.init(LocalStorage(tmp_path / "vault")), LocalSource(tmp_path / "src"))


names = st.binary(min_size=1, max_size=40).filter(
    lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b"..")
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(names, min_size=1, max_size=4, unique=True))
def test_any_byte_name_restores_to_the_same_bytes(file_names: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        display = {unicodedata.normalize("NFC", n.decode("utf-8", "backslashreplace")).casefold() for n in file_names}
        if len(display) < len(file_names):
            return  # one display key (refused, test above) or a case/normalization collision (13. of the format)
        files = {n: n[::-1] for n in file_names}
        for name, body in files.items():
            _write(root / "src", name, body)
        restored, _ = _round_trip(root)
        assert restored == files
