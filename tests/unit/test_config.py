"""The vault config object: version gate, field-named validation errors, opening a vault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vaultline.errors import FormatVersionError, VaultError, VaultExists, VaultNotFound
from vaultline.repository.config import EncryptionSettings, VaultConfig
from vaultline.repository.layout import CONFIG_KEY
from vaultline.repository.vault import Vault
from vaultline.storage import LocalStorage


def valid_config() -> dict:
    config = VaultConfig(vault_id="abc", encryption=EncryptionSettings(mode="none", id_key_material="AAAA"))
    return json.loads(config.to_bytes())


def test_config_round_trips() -> None:
    config = VaultConfig(vault_id="abc", encryption=EncryptionSettings(mode="none", id_key_material="AAAA"))
    assert VaultConfig.from_bytes(config.to_bytes(), "vault") == config


@pytest.mark.parametrize("version", [0, 3, 99, None, "1"])
def test_unknown_version_raises_format_version_error(version: object) -> None:
    raw = valid_config()
    raw["version"] = version
    with pytest.raises(FormatVersionError, match="not supported"):
        VaultConfig.from_bytes(json.dumps(raw).encode(), "vault")


def test_not_json_raises_vault_error() -> None:
    with pytest.raises(VaultError, match="not JSON"):
        VaultConfig.from_bytes(b"{oops", "vault")


def test_not_a_vaultline_config_raises_vault_error() -> None:
    with pytest.raises(VaultError, match="not a Vaultline vault config"):
        VaultConfig.from_bytes(b'{"format": "restic", "version": 1}', "vault")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pack_size": "big"}, "pack_size"),
        ({"vault_id": None}, "vault_id"),
        ({"compression": {"algorithm": "zstd", "level": 99}}, "compression.level"),
        ({"encryption": {"mode": "rot13"}}, "encryption.mode"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_malformed_field_raises_vault_error_naming_the_field(change: dict, field: str) -> None:
    raw = valid_config()
    raw.update(change)
    with pytest.raises(VaultError, match=f"invalid config field {field}:"):
        VaultConfig.from_bytes(json.dumps(raw).encode(), "where")


def test_missing_field_is_named() -> None:
    raw = valid_config()
    del raw["encryption"]
    with pytest.raises(VaultError, match="invalid config field encryption: Field required"):
        VaultConfig.from_bytes(json.dumps(raw).encode(), "where")


def test_open_missing_vault_raises_vault_not_found(tmp_path: Path) -> None:
    with pytest.raises(VaultNotFound, match="run `vaultline init`"):
        Vault.open(LocalStorage(tmp_path))


def test_init_twice_raises_vault_exists(tmp_path: Path) -> None:
    Vault.init(LocalStorage(tmp_path))
    with pytest.raises(VaultExists):
        Vault.init(LocalStorage(tmp_path))


def test_init_then_open_gives_the_same_chunk_ids(tmp_path: Path) -> None:
    created = Vault.init(LocalStorage(tmp_path), compression_level=7)
    opened = Vault.open(str(tmp_path))
    assert opened.config == created.config
    assert opened.config.compression.level == 7
    assert opened.cipher.chunk_id(b"x") == created.cipher.chunk_id(b"x")
    assert not opened.cipher.encrypted


def test_two_vaults_key_chunk_ids_differently(tmp_path: Path) -> None:
    a = Vault.init(LocalStorage(tmp_path / "a"))
    b = Vault.init(LocalStorage(tmp_path / "b"))
    assert a.cipher.chunk_id(b"x") != b.cipher.chunk_id(b"x")


def test_unencrypted_config_without_key_material_raises_vault_error(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    raw = valid_config()
    raw["encryption"] = {"mode": "none"}
    storage.put(CONFIG_KEY, json.dumps(raw).encode())
    with pytest.raises(VaultError, match="lacks its chunk-id key material"):
        Vault.open(storage)


def test_kms_init_without_key_id_raises_vault_error(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="--kms-key-id"):
        Vault.init(LocalStorage(tmp_path), encryption="kms")
