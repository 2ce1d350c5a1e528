"""The vault config object: the one plaintext object that says how to read everything else."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError

from vaultline import FORMAT_VERSION
from vaultline.errors import FormatVersionError, VaultError
from vaultline.model import VaultlineModel
from vaultline.repository.chunking import ChunkerParams

SUPPORTED_VERSIONS = (1, 2)


class CompressionSettings(VaultlineModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    algorithm: Literal["zstd"] = "zstd"
    level: int = Field(default=3, ge=1, le=22)


class EncryptionSettings(VaultlineModel):
    """``none``: blobs in the clear, ``id_key_material`` holds the chunk-id key seed.
    ``kms``: ``wrapped_key`` is the KMS-encrypted 256-bit data key, ``key_check`` tells a wrong key apart."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["none", "kms"]
    algorithm: Literal["AES-256-GCM"] | None = None
    kms_key_id: str | None = None
    wrapped_key: str | None = None
    key_check: str | None = None
    id_key_material: str | None = None


class VaultConfig(VaultlineModel):
    """Contents of the ``config`` object (JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["vaultline"] = "vaultline"
    version: int = FORMAT_VERSION
    vault_id: str
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # Factories, not instances: an instance as a default is validated when the class is defined, which built both
    # models' validators (and loaded pydantic's plugins) at every import of the engine.
    chunker: ChunkerParams = Field(default_factory=ChunkerParams)
    compression: CompressionSettings = Field(default_factory=CompressionSettings)
    pack_size: int = 16 * 1024 * 1024
    encryption: EncryptionSettings

    def to_bytes(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), indent=2).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> VaultConfig:
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise VaultError(f"{where}: config is not JSON ({exc})") from None
        if not isinstance(raw, dict) or raw.get("format") != "vaultline":
            raise VaultError(f"{where}: not a Vaultline vault config")
        version = raw.get("version")
        if type(version) is not int or version not in SUPPORTED_VERSIONS:
            raise FormatVersionError(
                f"{where}: vault format version {raw.get('version')} is not supported by this build "
                f"(supported: {', '.join(map(str, SUPPORTED_VERSIONS))})"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise VaultError(f"{where}: invalid config field {field}: {first['msg']}") from None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)
