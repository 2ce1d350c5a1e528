"""Shared fixtures: an in-process moto AWS, real moto resources, and vaults on disk or in a moto bucket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from vaultline.aws import reset_clients
from vaultline.repository.layout import CONFIG_KEY
from vaultline.repository.vault import Vault
from vaultline.storage import LocalStorage, S3Storage
from vaultline_dev.embedded import object_lock_rules, service_gaps, speedups

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, no endpoint override, no profile: nothing can reach real AWS."""
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_KMS", "VAULTLINE_VAULT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    """An in-process moto AWS for the duration of one test; the engine's cached clients are reset around it.
    KMS refuses keys that are disabled or pending deletion, S3 a retention change that weakens one in force, and
    CloudWatch alarms it would not evaluate, as AWS does (vaultline_dev/embedded/service_gaps.py,
    object_lock_rules.py); moto skips the work no client sees, as in the embedded AWS (speedups.py)."""
    reset_clients()
    speedups.install()
    service_gaps.install_kms_key_states()
    object_lock_rules.install()
    service_gaps.install_alarm_limits()
    try:
        with mock_aws():
            yield
    finally:
        service_gaps.uninstall_alarm_limits()
        object_lock_rules.uninstall()
        service_gaps.uninstall_kms_key_states()
        speedups.uninstall()
        reset_clients()


@pytest.fixture
def s3(aws: None) -> Any:
    return boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def kms(aws: None) -> Any:
    return boto3.client("kms", region_name="us-east-1")


@pytest.fixture
def make_bucket(s3: Any) -> Callable[..., str]:
    """Create a moto bucket, optionally versioned; return its name."""

    def make(name: str, versioned: bool = False) -> str:
        s3.create_bucket(Bucket=name)
        if versioned:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    return make


@pytest.fixture
def local_vault(tmp_path: Path) -> Vault:
    """A fresh unencrypted vault in a local directory (no AWS needed)."""
    return Vault.init(LocalStorage(tmp_path / "vault"))


@pytest.fixture
def s3_vault(make_bucket: Callable[..., str]) -> Vault:
    """A fresh unencrypted vault in a moto bucket under a prefix."""
    return Vault.init(S3Storage(make_bucket("vault-bucket"), "vaults/main"))


def set_pack_size(vault: Vault, pack_size: int) -> Vault:
    """Rewrite the vault config with a smaller pack size (so tests can fill packs with little data); reopen."""
    config = vault.config.model_copy(update={"pack_size": pack_size})
    vault.storage.put(CONFIG_KEY, config.to_bytes())
    return Vault.open(vault.storage)


@pytest.fixture
def small_packs() -> Callable[[Vault, int], Vault]:
    return set_pack_size


def random_bytes(size: int, seed: int) -> bytes:
    """Deterministic incompressible bytes."""
    import random

    return random.Random(seed).randbytes(size)


@pytest.fixture
def rand() -> Callable[[int, int], bytes]:
    return random_bytes


def tree_files(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` by relative POSIX path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.fixture
def read_tree() -> Callable[[Path], dict[str, bytes]]:
    return tree_files
