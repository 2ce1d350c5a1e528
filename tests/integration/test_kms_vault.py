"""KMS envelope encryption: round trip, and every way of holding the wrong key fails loudly, never with wrong bytes."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from vaultline.cli.main import main
from vaultline.errors import IntegrityError, VaultError, WrongKeyError
from vaultline.operations.backup import run_backup
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.repository.crypto import Cipher
from vaultline.repository.layout import CONFIG_KEY, pack_key
from vaultline.repository.manifest import iter_entries, list_recovery_point_ids, load_recovery_point
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.storage import S3Storage
from vaultline.targets import S3Target

MARKER = b"TOP-SECRET-PLAINTEXT-MARKER " * 2000


@pytest.fixture
def key_id(kms: Any) -> str:
    key: str = kms.create_key(Description="vaultline test")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/vaultline-test", TargetKeyId=key)
    return key


@pytest.fixture
def encrypted_vault(s3: Any, make_bucket: Callable[..., str], key_id: str) -> Vault:
    make_bucket("secrets")
    s3.put_object(Bucket="secrets", Key="plans/secret.txt", Body=MARKER, Metadata={"k": "v"})
    s3.put_object(Bucket="secrets", Key="empty", Body=b"")
    make_bucket("enc-vault")
    vault = Vault.init(S3Storage("enc-vault"), encryption="kms", kms_key_id="alias/vaultline-test")
    run_backup(vault, open_source("s3://secrets"))
    return vault


def edit_config(s3: Any, change: Callable[[dict[str, Any]], None]) -> None:
    config = json.loads(s3.get_object(Bucket="enc-vault", Key=CONFIG_KEY)["Body"].read())
    change(config)
    s3.put_object(Bucket="enc-vault", Key=CONFIG_KEY, Body=json.dumps(config).encode())


def test_encrypted_vault_round_trips_and_stores_no_plaintext(
    s3: Any, make_bucket: Callable[..., str], encrypted_vault: Vault
) -> None:
    config = json.loads(s3.get_object(Bucket="enc-vault", Key=CONFIG_KEY)["Body"].read())
    assert config["encryption"]["mode"] == "kms"
    assert config["encryption"]["algorithm"] == "AES-256-GCM"
    assert "id_key_material" not in config["encryption"] or config["encryption"]["id_key_material"] is None

    for obj in s3.list_objects_v2(Bucket="enc-vault")["Contents"]:
        stored = s3.get_object(Bucket="enc-vault", Key=obj["Key"])["Body"].read()
        assert b"TOP-SECRET" not in stored
        assert b"secret.txt" not in stored

    vault = Vault.open("s3://enc-vault")
    assert vault.cipher.encrypted
    rp_id = list_recovery_point_ids(vault)[0]
    make_bucket("plain-copy")
    rp = load_recovery_point(vault, rp_id)
    restore_entries(vault, select_entries(vault, rp), S3Target("s3://plain-copy"))
    assert s3.get_object(Bucket="plain-copy", Key="plans/secret.txt")["Body"].read() == MARKER
    assert s3.get_object(Bucket="plain-copy", Key="empty")["Body"].read() == b""


def test_tampered_wrapped_key_raises_wrong_key_error(s3: Any, encrypted_vault: Vault) -> None:
    def tamper(config: dict[str, Any]) -> None:
        wrapped = bytearray(base64.b64decode(config["encryption"]["wrapped_key"]))
        wrapped[-5] ^= 0xFF
        config["encryption"]["wrapped_key"] = base64.b64encode(bytes(wrapped)).decode()

    edit_config(s3, tamper)
    with pytest.raises(WrongKeyError, match="KMS cannot unwrap the vault key") as caught:
        Vault.open("s3://enc-vault")
    assert "s3://enc-vault" in str(caught.value)


def test_vault_key_wrapped_by_another_kms_key_raises_wrong_key_error(s3: Any, kms: Any, encrypted_vault: Vault) -> None:
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    edit_config(s3, lambda c: c["encryption"].update(kms_key_id=other))
    with pytest.raises(WrongKeyError, match="KMS cannot unwrap the vault key"):
        Vault.open("s3://enc-vault")


def test_data_key_of_another_vault_raises_wrong_key_error(
    s3: Any, make_bucket: Callable[..., str], encrypted_vault: Vault
) -> None:
    # Same KMS key, different data key: KMS unwraps fine, but the key check tells it is not this vault's key.
    make_bucket("other-vault")
    other = Vault.init(S3Storage("other-vault"), encryption="kms", kms_key_id="alias/vaultline-test")
    edit_config(s3, lambda c: c["encryption"].update(wrapped_key=other.config.encryption.wrapped_key))
    with pytest.raises(WrongKeyError, match="does not open this vault"):
        Vault.open("s3://enc-vault")


def test_wrong_key_never_yields_wrong_bytes(encrypted_vault: Vault) -> None:
    wrong = Vault(encrypted_vault.storage, encrypted_vault.config, Cipher.from_master(b"w" * 32))
    with pytest.raises(IntegrityError):
        _ = wrong.index
    # Even with a correct index in hand, blobs do not open under another key.
    wrong.__dict__["index"] = Vault.open("s3://enc-vault").index
    blob_id = Vault.open("s3://enc-vault").read_verified_pack_entries(next(iter(wrong.index.packs)))[0].id
    with pytest.raises(IntegrityError, match="authentication failed"):
        wrong.read_blob(blob_id)


def test_tampered_encrypted_blob_raises_integrity_error(s3: Any, encrypted_vault: Vault) -> None:
    vault = Vault.open("s3://enc-vault")
    (rp_id,) = list_recovery_point_ids(vault)
    entries = list(iter_entries(vault, load_recovery_point(vault, rp_id)))
    secret = next(e for e in entries if e.key == "plans/secret.txt")
    location = vault.index.get(bytes.fromhex(secret.chunks[0]))
    assert location is not None
    key = pack_key(location.pack_id)
    data = bytearray(s3.get_object(Bucket="enc-vault", Key=key)["Body"].read())
    data[location.entry.offset + location.entry.stored_length // 2] ^= 0x01
    s3.put_object(Bucket="enc-vault", Key=key, Body=bytes(data))
    with pytest.raises(IntegrityError, match="authentication failed"):
        vault.read_blob(bytes.fromhex(secret.chunks[0]))


def test_init_with_unknown_kms_key_raises_vault_error(make_bucket: Callable[..., str]) -> None:
    make_bucket("no-key-vault")
    with pytest.raises(VaultError, match="cannot generate a data key"):
        Vault.init(S3Storage("no-key-vault"), encryption="kms", kms_key_id="alias/does-not-exist")


def test_cli_reports_wrong_key_in_one_line_and_exits_1(
    s3: Any, encrypted_vault: Vault, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_config(s3, lambda c: c["encryption"].update(wrapped_key=base64.b64encode(b"garbage" * 10).decode()))
    assert main(["--vault", "s3://enc-vault", "list"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("vaultline: error: s3://enc-vault: KMS cannot unwrap the vault key")


def test_cli_init_with_kms_creates_an_encrypted_vault(
    make_bucket: Callable[..., str], key_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make_bucket("cli-enc")
    code = main(["--vault", "s3://cli-enc/v", "init", "--encryption", "kms", "--kms-key-id", key_id, "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["encryption"] == "kms"
    assert out["vault"] == "s3://cli-enc/v"
    assert Vault.open("s3://cli-enc/v").cipher.encrypted
