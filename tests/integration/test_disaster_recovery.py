"""Disaster recovery: a copy of the vault (bucket <-> directory, same layout) and the key are all a restore needs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vaultline.cli.main import main
from vaultline.operations.backup import run_backup
from vaultline.operations.check import check_vault
from vaultline.repository.manifest import list_recovery_point_ids
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.storage import LocalStorage, S3Storage


@pytest.fixture
def source_tree(tmp_path: Path, rand: Callable[[int, int], bytes]) -> dict[str, bytes]:
    files = {"docs/a.txt": b"alpha " * 1000, "docs/b.bin": rand(900_000, 3), "c.json": b"{}", "empty": b""}
    for key, data in files.items():
        path = tmp_path / "src" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_local_vault_copied_to_s3_restores(
    s3: Any,
    make_bucket: Callable[..., str],
    tmp_path: Path,
    source_tree: dict[str, bytes],
    read_tree: Callable[[Path], dict[str, bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "vault"
    vault = Vault.init(LocalStorage(root))
    rp = run_backup(vault, open_source(str(tmp_path / "src")))

    make_bucket("dr-copy")
    for path in sorted(root.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket="dr-copy", Key="copied/" + path.relative_to(root).as_posix(), Body=path.read_bytes())

    copy = Vault.open("s3://dr-copy/copied")
    assert list_recovery_point_ids(copy) == [rp.id]
    assert check_vault(copy, read_data=True).errors == []
    assert main(["--vault", "s3://dr-copy/copied", "restore", rp.id, "--to", str(tmp_path / "restored")]) == 0
    assert read_tree(tmp_path / "restored") == source_tree


def test_s3_vault_copied_to_a_directory_restores(
    s3: Any,
    make_bucket: Callable[..., str],
    tmp_path: Path,
    source_tree: dict[str, bytes],
    read_tree: Callable[[Path], dict[str, bytes]],
) -> None:
    make_bucket("primary")
    vault = Vault.init(S3Storage("primary", "vault"))
    rp = run_backup(vault, open_source(str(tmp_path / "src")))

    copy_root = tmp_path / "offline"
    for obj in s3.list_objects_v2(Bucket="primary")["Contents"]:
        path = copy_root / obj["Key"].removeprefix("vault/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s3.get_object(Bucket="primary", Key=obj["Key"])["Body"].read())

    offline = Vault.open(str(copy_root))
    assert check_vault(offline, read_data=True).errors == []
    assert main(["--vault", str(copy_root), "restore", "latest", "--to", str(tmp_path / "restored")]) == 0
    assert read_tree(tmp_path / "restored") == source_tree
    assert list_recovery_point_ids(offline) == [rp.id]


def test_encrypted_vault_copy_restores_with_the_kms_key(
    s3: Any,
    kms: Any,
    make_bucket: Callable[..., str],
    tmp_path: Path,
    source_tree: dict[str, bytes],
    read_tree: Callable[[Path], dict[str, bytes]],
) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    root = tmp_path / "vault"
    run_backup(Vault.init(LocalStorage(root), encryption="kms", kms_key_id=key_id), open_source(str(tmp_path / "src")))
    make_bucket("dr-enc")
    for path in sorted(root.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket="dr-enc", Key=path.relative_to(root).as_posix(), Body=path.read_bytes())
    assert main(["--vault", "s3://dr-enc", "restore", "latest", "--to", str(tmp_path / "restored")]) == 0
    assert read_tree(tmp_path / "restored") == source_tree
