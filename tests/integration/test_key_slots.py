"""Key slots: the vault's data key wrapped by several KMS keys and a passphrase; break-glass recovery with no KMS."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import Run
from vaultline.aws import reset_clients
from vaultline.errors import KeyUnavailable, VaultError, WrongKeyError
from vaultline.operations.backup import run_backup
from vaultline.operations.keys import add_kms_slot, add_passphrase_slot, list_key_slots, remove_slot
from vaultline.repository import keys
from vaultline.repository.keys import CONFIG_SLOT, ScryptCost
from vaultline.repository.layout import CONFIG_KEY, KEYS_PREFIX
from vaultline.repository.locks import VaultLocked, acquire, release
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.storage import S3Storage

FAST = ScryptCost(n=2**10, r=8, p=1)  # the production cost (2^17) takes 0.3 to 1.4 s per derivation on this box
SECRET = b"break-glass payload " * 3000
VAULT = "s3://slot-vault"


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI seals with the module's default cost; lower it so each test derives in milliseconds."""
    monkeypatch.setattr(keys, "DEFAULT_SCRYPT_COST", FAST)


@pytest.fixture
def key_id(kms: Any) -> str:
    key: str = kms.create_key(Description="vault key")["KeyMetadata"]["KeyId"]
    return key


@pytest.fixture
def vault(s3: Any, make_bucket: Callable[..., str], key_id: str) -> Vault:
    make_bucket("slot-source")
    s3.put_object(Bucket="slot-source", Key="a/secret.bin", Body=SECRET)
    s3.put_object(Bucket="slot-source", Key="b/empty", Body=b"")
    make_bucket("slot-vault")
    made = Vault.init(S3Storage("slot-vault"), encryption="kms", kms_key_id=key_id)
    run_backup(made, open_source("s3://slot-source"))
    return made


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase"
    path.write_bytes(b"correct horse battery staple\n")
    return path


def forbid_kms(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From here on, making a KMS client fails (and is counted): proof that what follows never calls KMS."""
    reset_clients()
    attempts: list[str] = []
    original: Any = boto3.session.Session.client

    def guarded(self: boto3.session.Session, service: str, *args: Any, **kwargs: Any) -> Any:
        if service == "kms":
            attempts.append(service)
            raise AssertionError("KMS was called")
        return original(self, service, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", guarded)
    return attempts


def restored(run: Run, s3: Any, *global_args: str) -> bytes:
    """Restore the latest recovery point through the CLI into a fresh bucket; the secret object's bytes."""
    s3.create_bucket(Bucket="slot-restore")
    code, _, err = run("--vault", VAULT, *global_args, "restore", "latest", "--to", "s3://slot-restore")
    assert code == 0, err
    body: bytes = s3.get_object(Bucket="slot-restore", Key="a/secret.bin")["Body"].read()
    assert s3.get_object(Bucket="slot-restore", Key="b/empty")["Body"].read() == b""
    return body


def add_passphrase(run: Run, passphrase_file: Path) -> str:
    code, out, err = run("--vault", VAULT, "key", "add", "--passphrase-file", str(passphrase_file), "--json")
    assert code == 0, err
    slot_id: str = json.loads(out)["id"]
    return slot_id


def test_key_list_shows_the_config_slot_and_every_added_slot(
    run: Run, vault: Vault, passphrase_file: Path, kms: Any
) -> None:
    other = kms.create_key()["KeyMetadata"]["Arn"]
    code, out, err = run("--vault", VAULT, "key", "add", "--kms-key-id", other, "--json")
    assert code == 0, err
    kms_slot = json.loads(out)
    assert kms_slot["kind"] == "kms" and kms_slot["kms_key_id"] == other and kms_slot["region"] == "us-east-1"
    phrase_slot = add_passphrase(run, passphrase_file)

    code, out, err = run("--vault", VAULT, "key", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [(s["id"], s["kind"]) for s in listed] == sorted(
        [(CONFIG_SLOT, "kms"), (kms_slot["id"], "kms"), (phrase_slot, "passphrase")],
        key=lambda pair: (pair[0] != CONFIG_SLOT, pair[0]),
    )
    assert listed[0]["removable"] is False
    code, out, _ = run("--vault", VAULT, "key", "list")
    assert code == 0 and phrase_slot in out and "scrypt N=1024 r=8 p=1" in out


def test_added_slot_is_removed_and_no_longer_listed(run: Run, vault: Vault, passphrase_file: Path) -> None:
    slot_id = add_passphrase(run, passphrase_file)
    code, out, err = run("--vault", VAULT, "key", "remove", slot_id)
    assert code == 0, err
    assert f"removed key slot {slot_id}" in out
    assert [s.id for s in list_key_slots(vault.storage)] == [CONFIG_SLOT]
    code, _, err = run("--vault", VAULT, "--passphrase-file", str(passphrase_file), "list")
    assert code == 1 and "no passphrase key slot" in err


def test_config_slot_cannot_be_removed(run: Run, vault: Vault) -> None:
    code, out, err = run("--vault", VAULT, "key", "remove", CONFIG_SLOT)
    assert code == 1 and out == ""
    assert "the config slot cannot be removed" in err
    assert Vault.open(VAULT).unlocked is not None


def test_unknown_slot_id_is_refused(run: Run, vault: Vault) -> None:
    code, _, err = run("--vault", VAULT, "key", "remove", "0123456789abcdef")
    assert code == 1 and "no key slot 0123456789abcdef" in err


def test_restore_with_the_passphrase_never_calls_kms_and_is_bit_exact(
    run: Run, s3: Any, vault: Vault, passphrase_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_passphrase(run, passphrase_file)
    attempts = forbid_kms(monkeypatch)
    with pytest.raises(WrongKeyError, match="KMS was called"):
        Vault.open(VAULT)  # the guard catches an open by KMS
    attempts.clear()
    monkeypatch.setenv("VAULTLINE_PASSPHRASE_FILE", str(passphrase_file))
    assert restored(run, s3) == SECRET
    code, _, err = run("--vault", VAULT, "check", "--read-data")
    assert code == 0, err
    assert attempts == []


def test_wrong_passphrase_is_a_clear_error(run: Run, vault: Vault, passphrase_file: Path, tmp_path: Path) -> None:
    add_passphrase(run, passphrase_file)
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"incorrect horse\n")
    code, out, err = run("--vault", VAULT, "--passphrase-file", str(wrong), "list")
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        f"vaultline: error: {VAULT}: wrong passphrase (it opens none of the vault's 1 passphrase slots)"
    ]
    with pytest.raises(WrongKeyError, match="wrong passphrase"):
        Vault.open(VAULT, passphrase=b"correct horse battery staple ")


def test_missing_or_empty_passphrase_file_is_a_usage_error(run: Run, vault: Vault, tmp_path: Path) -> None:
    code, _, err = run("--vault", VAULT, "--passphrase-file", str(tmp_path / "absent"), "list")
    assert code == 2 and "cannot read the passphrase file" in err
    (tmp_path / "empty").write_bytes(b"\n")
    code, _, err = run("--vault", VAULT, "key", "add", "--passphrase-file", str(tmp_path / "empty"))
    assert code == 2 and "is empty" in err
    assert [s.id for s in list_key_slots(vault.storage)] == [CONFIG_SLOT]


@pytest.mark.parametrize("disable", ["disable_key", "schedule_key_deletion"])
def test_vault_whose_kms_key_cannot_be_used_restores_with_the_passphrase(
    run: Run, s3: Any, kms: Any, vault: Vault, key_id: str, passphrase_file: Path, disable: str
) -> None:
    add_passphrase(run, passphrase_file)
    if disable == "disable_key":
        kms.disable_key(KeyId=key_id)
        state = "is disabled"
    else:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        state = "is pending deletion"

    code, out, err = run("--vault", VAULT, "list")
    assert code == 1 and out == ""
    (line,) = err.strip().splitlines()
    assert "KMS cannot unwrap the vault key" in line and state in line
    assert "--passphrase-file" in line
    with pytest.raises(KeyUnavailable):
        Vault.open(VAULT)

    assert restored(run, s3, "--passphrase-file", str(passphrase_file)) == SECRET


def test_kms_slot_in_another_region_opens_the_vault_when_the_config_key_is_disabled(
    run: Run, s3: Any, kms: Any, vault: Vault, key_id: str
) -> None:
    west = boto3.client("kms", region_name="us-west-2").create_key()["KeyMetadata"]["Arn"]
    info = add_kms_slot(vault, west)
    assert info.region == "us-west-2"
    kms.disable_key(KeyId=key_id)
    opened = Vault.open(VAULT)
    assert opened.unlocked is not None and opened.unlocked.slot == info.id
    assert restored(run, s3) == SECRET


def test_last_slot_known_to_work_cannot_be_removed(
    run: Run, kms: Any, vault: Vault, key_id: str, passphrase_file: Path
) -> None:
    slot_id = add_passphrase(run, passphrase_file)
    kms.disable_key(KeyId=key_id)
    code, _, err = run("--vault", VAULT, "--passphrase-file", str(passphrase_file), "key", "remove", slot_id)
    assert code == 1
    assert f"removing key slot {slot_id} would leave no slot known to work" in err and "is disabled" in err
    assert slot_id in [s.id for s in list_key_slots(vault.storage)]
    # With the KMS key back, the config slot works again, and the passphrase slot may go.
    kms.enable_key(KeyId=key_id)
    code, _, err = run("--vault", VAULT, "--passphrase-file", str(passphrase_file), "key", "remove", slot_id)
    assert code == 0, err


def test_removing_the_kms_slot_that_opened_the_vault_needs_another_working_slot(
    kms: Any, vault: Vault, key_id: str
) -> None:
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    info = add_kms_slot(vault, other)
    kms.disable_key(KeyId=key_id)
    opened = Vault.open(VAULT)
    assert opened.unlocked is not None and opened.unlocked.slot == info.id
    with pytest.raises(VaultError, match="would leave no slot known to work"):
        remove_slot(opened, info.id)


def test_kms_slot_under_a_key_that_cannot_decrypt_is_not_added(kms: Any, vault: Vault) -> None:
    with pytest.raises(VaultError, match="cannot encrypt the data key"):
        add_kms_slot(vault, "alias/does-not-exist")
    disabled = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=disabled)
    with pytest.raises(VaultError, match="is disabled"):
        add_kms_slot(vault, disabled)
    assert [s.id for s in list_key_slots(vault.storage)] == [CONFIG_SLOT]


def test_old_single_key_vault_reads_unchanged_and_takes_slots(
    run: Run, s3: Any, vault: Vault, passphrase_file: Path
) -> None:
    # A vault written before key slots: its config alone, no keys/ prefix. Its config is never rewritten.
    config_before = s3.get_object(Bucket="slot-vault", Key=CONFIG_KEY)["Body"].read()
    assert "Contents" not in s3.list_objects_v2(Bucket="slot-vault", Prefix=KEYS_PREFIX)
    opened = Vault.open(VAULT)
    assert opened.unlocked is not None and opened.unlocked.slot == CONFIG_SLOT
    add_passphrase(run, passphrase_file)
    assert s3.get_object(Bucket="slot-vault", Key=CONFIG_KEY)["Body"].read() == config_before
    assert restored(run, s3, "--passphrase-file", str(passphrase_file)) == SECRET


def test_slot_copied_from_another_vault_does_not_open_this_one(
    s3: Any, make_bucket: Callable[..., str], vault: Vault, key_id: str
) -> None:
    make_bucket("other-slot-vault")
    other = Vault.init(S3Storage("other-slot-vault"), encryption="kms", kms_key_id=key_id)
    foreign = add_passphrase_slot(other, b"pw", FAST)
    body = s3.get_object(Bucket="other-slot-vault", Key=KEYS_PREFIX + foreign.id)["Body"].read()
    s3.put_object(Bucket="slot-vault", Key=KEYS_PREFIX + foreign.id, Body=body)
    with pytest.raises(WrongKeyError, match="wrong passphrase"):
        Vault.open(VAULT, passphrase=b"pw")


def test_key_commands_refuse_a_vault_without_encryption(
    run: Run, make_bucket: Callable[..., str], passphrase_file: Path
) -> None:
    make_bucket("plain-vault")
    Vault.init(S3Storage("plain-vault"))
    for argv in (["key", "list"], ["key", "add", "--passphrase-file", str(passphrase_file)], ["key", "remove", "x"]):
        code, _, err = run("--vault", "s3://plain-vault", *argv)
        assert code == 1, argv
        assert "the vault is not encrypted" in err and "no key slots" in err


def test_stray_file_under_keys_is_ignored(s3: Any, vault: Vault, passphrase_file: Path, run: Run) -> None:
    add_passphrase(run, passphrase_file)
    s3.put_object(Bucket="slot-vault", Key=KEYS_PREFIX + ".DS_Store", Body=b"\x00\x01")
    assert len(list_key_slots(vault.storage)) == 2
    assert Vault.open(VAULT, passphrase=b"correct horse battery staple").unlocked is not None


def test_malformed_slot_is_refused_naming_it(s3: Any, vault: Vault) -> None:
    s3.put_object(Bucket="slot-vault", Key=KEYS_PREFIX + "0123456789abcdef", Body=b'{"version": 1}')
    with pytest.raises(VaultError, match="keys/0123456789abcdef: invalid key slot field"):
        Vault.open(VAULT, passphrase=b"pw")


def test_embedded_kms_refuses_a_disabled_or_pending_deletion_key_as_aws_does(kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"k" * 32)["CiphertextBlob"]
    kms.disable_key(KeyId=key["KeyId"])
    for call in (
        lambda: kms.decrypt(CiphertextBlob=blob),
        lambda: kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x"),
        lambda: kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256"),
    ):
        with pytest.raises(ClientError) as refused:
            call()
        assert refused.value.response["Error"]["Code"] == "DisabledException"
        assert refused.value.response["Error"]["Message"] == f"{key['Arn']} is disabled."
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"k" * 32
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    with pytest.raises(ClientError) as refused:
        kms.decrypt(CiphertextBlob=blob)
    assert refused.value.response["Error"]["Code"] == "KMSInvalidStateException"
    assert refused.value.response["Error"]["Message"] == f"{key['Arn']} is pending deletion."


def test_multi_region_replica_slot_unwraps_in_the_replica_region(kms: Any, vault: Vault, key_id: str) -> None:
    primary = kms.create_key(MultiRegion=True)["KeyMetadata"]
    replica = kms.replicate_key(KeyId=primary["KeyId"], ReplicaRegion="eu-west-1")["ReplicaKeyMetadata"]["Arn"]
    info = add_kms_slot(vault, replica)
    assert info.region == "eu-west-1" and info.kms_key_id == replica
    kms.disable_key(KeyId=key_id)
    kms.disable_key(KeyId=primary["KeyId"])  # a regional key's state is its own: the replica still decrypts
    opened = Vault.open(VAULT)
    assert opened.unlocked is not None and opened.unlocked.slot == info.id


def test_two_removals_cannot_each_keep_the_slot_the_other_removes(kms: Any, vault: Vault, key_id: str) -> None:
    first = add_passphrase_slot(vault, b"first passphrase", FAST)
    second = add_passphrase_slot(vault, b"second passphrase", FAST)
    kms.disable_key(KeyId=key_id)
    by_first = Vault.open(VAULT, passphrase=b"first passphrase")
    by_second = Vault.open(VAULT, passphrase=b"second passphrase")
    assert by_first.unlocked is not None and by_first.unlocked.slot == first.id
    # Each removal alone is allowed: the slot it was opened with stays. Run one after the other, the second must
    # see that its own slot is gone, and that no remaining slot is known to work.
    remove_slot(by_first, second.id)
    with pytest.raises(VaultError, match=f"removing key slot {first.id} would leave no slot known to work"):
        remove_slot(by_second, first.id)
    assert first.id in [s.id for s in list_key_slots(vault.storage)]


def test_removal_waits_for_an_exclusive_holder(vault: Vault, passphrase_file: Path, run: Run) -> None:
    slot_id = add_passphrase(run, passphrase_file)
    held = acquire(vault.storage, "prune", exclusive=True)
    try:
        with pytest.raises(VaultLocked, match="prune lock held by"):
            remove_slot(vault, slot_id)
    finally:
        release(vault.storage, held)
    assert slot_id in [s.id for s in list_key_slots(vault.storage)]
    remove_slot(vault, slot_id)
