"""Errors name what failed: missing buckets, unknown recovery points, missing vaults."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vaultline.cli.main import main
from vaultline.errors import RecoveryPointNotFound, SourceError, TargetError, VaultError, VaultNotFound
from vaultline.operations.backup import run_backup
from vaultline.repository.manifest import resolve_recovery_point
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.targets import S3Target, open_target


def test_restore_into_a_missing_bucket_raises_target_error_naming_it(aws: None) -> None:
    with pytest.raises(TargetError, match="target bucket no-such-target does not exist"):
        S3Target("s3://no-such-target/prefix")
    with pytest.raises(TargetError, match="no-such-target"):
        open_target("s3://no-such-target")


def test_backup_of_a_missing_bucket_raises_source_error_naming_it(s3_vault: Vault) -> None:
    with pytest.raises(SourceError, match="source bucket no-such-source does not exist"):
        run_backup(s3_vault, open_source("s3://no-such-source/prefix"))
    assert list(s3_vault.storage.list("recovery-points/")) == []


def test_backup_of_a_missing_directory_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        open_source(str(tmp_path / "nowhere"))


def test_unknown_recovery_point_raises_not_found(s3_vault: Vault) -> None:
    with pytest.raises(RecoveryPointNotFound, match="20200101T000000Z-deadbeef"):
        resolve_recovery_point(s3_vault, "20200101T000000Z-deadbeef")


def test_missing_vault_config_raises_vault_not_found(make_bucket: Callable[..., str]) -> None:
    make_bucket("empty-bucket")
    with pytest.raises(VaultNotFound, match="s3://empty-bucket/nothing-here"):
        Vault.open("s3://empty-bucket/nothing-here")


def test_missing_vault_bucket_raises_vault_error_naming_it(aws: None) -> None:
    with pytest.raises(VaultError, match="no-such-vault"):
        Vault.open("s3://no-such-vault")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["restore", "latest", "--to", "s3://no-such-target"], "target bucket no-such-target does not exist"),
        (["backup", "s3://no-such-source"], "source bucket no-such-source does not exist"),
        (["restore", "20200101T000000Z-deadbeef", "--to", "s3://restored"], "20200101T000000Z-deadbeef"),
        (["ls", "nope"], "recovery point nope does not exist"),
    ],
)
def test_cli_turns_errors_into_one_line_and_exit_1(
    s3: Any,
    make_bucket: Callable[..., str],
    s3_vault: Vault,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    make_bucket("src")
    make_bucket("restored")
    s3.put_object(Bucket="src", Key="k", Body=b"v")
    run_backup(s3_vault, open_source("s3://src"))
    capsys.readouterr()
    assert main(["--vault", s3_vault.url, *argv]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("vaultline: error: ")
    assert message in lines[0]
    assert "Traceback" not in captured.err


def test_cli_on_a_missing_vault_bucket_exits_1(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--vault", "s3://no-such-vault", "list"]) == 1
    assert "no-such-vault" in capsys.readouterr().err
