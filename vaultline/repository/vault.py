"""A vault: its config and key, its index, reading blobs, and the layout of everything it stores.

Layout (relative to the vault root, identical on S3 and in a directory)::

    config                         plaintext JSON (VaultConfig)
    data/<2 hex>/<pack id>         packs
    index/<index id>               index objects
    keys/<slot id>                 key slots: further wrappings of the data key (repository/keys.py)
    recovery-points/<rp id>        manifests: a recovery point exists iff its manifest does
    staging/<rp id>/...            work lists and partial results of running backups (never read by restore)
"""

from __future__ import annotations

import os
import uuid
from functools import cached_property
from typing import Literal

import blake3

from vaultline.errors import IntegrityError, ObjectMissing, VaultError, VaultExists, VaultNotFound
from vaultline.repository.compression import decompress
from vaultline.repository.config import CompressionSettings, EncryptionSettings, VaultConfig, b64, unb64
from vaultline.repository.crypto import Cipher, key_check_value
from vaultline.repository.index import DedupIndex, MasterIndex, load_master_index, write_index
from vaultline.repository.index_codec import IndexPacks, index_version
from vaultline.repository.keys import CONFIG_SLOT, KmsClients, Unlocked, ambient_kms, generate_data_key, unlock
from vaultline.repository.layout import CONFIG_KEY, pack_key
from vaultline.repository.object_lock import VaultObjectLock
from vaultline.repository.packs import BlobEntry, read_pack_entries
from vaultline.repository.sharded_index import CompactionResult, compact, invalidate_catalog, open_dedup_index
from vaultline.storage import Storage, open_storage


class Vault:
    """An opened vault. Cheap to create; the index loads on first use.

    The vault decides which of its writes Object Lock retains: unless its storage was given a lock policy
    already (a deployed stack's), it locks by the vault's own ``object-lock`` object.
    """

    def __init__(self, storage: Storage, config: VaultConfig, cipher: Cipher, unlocked: Unlocked | None = None) -> None:
        """``unlocked``: the data key and the slot that gave it, which adding a key slot needs."""
        if storage.lock_policy is None:
            storage.lock_policy = VaultObjectLock.of_vault(storage)
        self.storage = storage
        self.config = config
        self.cipher = cipher
        self.unlocked = unlocked

    @property
    def url(self) -> str:
        return self.storage.url

    # -- creation and opening -------------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        storage: Storage,
        encryption: Literal["none", "kms"] = "none",
        kms_key_id: str | None = None,
        compression_level: int = 3,
    ) -> Vault:
        """Create a new vault; refuse (VaultExists) if one exists already, even one created a moment ago."""
        if storage.exists(CONFIG_KEY):
            raise VaultExists(f"{storage.url}: a vault already exists here")
        if encryption == "kms":
            if not kms_key_id:
                raise VaultError("--encryption kms needs --kms-key-id")
            master, wrapped = generate_data_key(kms_key_id)
            settings = EncryptionSettings(
                mode="kms",
                algorithm="AES-256-GCM",
                kms_key_id=kms_key_id,
                wrapped_key=b64(wrapped),
                key_check=key_check_value(master),
            )
            cipher = Cipher.from_master(master)
        else:
            seed = os.urandom(32)
            settings = EncryptionSettings(mode="none", id_key_material=b64(seed))
            cipher = Cipher.unencrypted(seed)
        config = VaultConfig(
            vault_id=uuid.uuid4().hex,
            encryption=settings,
            compression=CompressionSettings(level=compression_level),
        )
        # Two first runs may both get here: the conditional create lets exactly one config exist, and the other
        # caller learns it lost (VaultExists) and opens the winner's vault instead of using its own key.
        if not storage.create(CONFIG_KEY, config.to_bytes()):
            raise VaultExists(f"{storage.url}: a vault already exists here (created concurrently)")
        return cls(storage, config, cipher, Unlocked(master, CONFIG_SLOT) if encryption == "kms" else None)

    @classmethod
    def open(cls, storage: Storage | str, passphrase: bytes | None = None, kms: KmsClients = ambient_kms) -> Vault:
        """Open an existing vault; unwrap its key with KMS (``kms``'s clients: the process's own unless the caller
        acts through an assumed role) if it is encrypted, or, given ``passphrase``, with a passphrase key slot and
        no call to KMS at all (repository/keys.py). A vault without encryption has no key to unwrap and ignores
        ``passphrase``."""
        if isinstance(storage, str):
            storage = open_storage(storage)
        config = cls.read_config(storage)
        enc = config.encryption
        if enc.mode == "kms":
            if not enc.wrapped_key or not enc.key_check:
                raise VaultError(f"{storage.url}: encrypted vault config lacks its wrapped key")
            unlocked = unlock(storage, config, passphrase, kms=kms)
            return cls(storage, config, Cipher.from_master(unlocked.master), unlocked=unlocked)
        if not enc.id_key_material:
            raise VaultError(f"{storage.url}: vault config lacks its chunk-id key material")
        return cls(storage, config, Cipher.unencrypted(unb64(enc.id_key_material)))

    @staticmethod
    def read_config(storage: Storage) -> VaultConfig:
        """The vault's config, read and validated, without unwrapping any key (VaultNotFound if there is none)."""
        try:
            raw = storage.get(CONFIG_KEY)
        except ObjectMissing:
            raise VaultNotFound(f"{storage.url}: no vault here (missing config; run `vaultline init`)") from None
        return VaultConfig.from_bytes(raw, storage.url)

    # -- index and blobs ------------------------------------------------------------------------------------

    @cached_property
    def index(self) -> MasterIndex:
        """The whole index (maintenance: check, stats, prune): 34 bytes per blob of the vault."""
        lookup = self.__dict__.get("lookup")
        if isinstance(lookup, MasterIndex):
            return lookup
        return load_master_index(self.storage, self.cipher)

    @cached_property
    def lookup(self) -> DedupIndex:
        """The index as a worker uses it (dedup and reads): sharded behind a filter when the vault has a valid
        index catalog (``vaultline.repository.sharded_index``), else the whole index."""
        whole = self.__dict__.get("index")
        if whole is not None:
            return whole
        return open_dedup_index(self.storage, self.cipher)

    def forget_index(self) -> None:
        """Drop what was loaded of the index: the next use reads it afresh (it may have changed: a prune, a
        compaction)."""
        self.__dict__.pop("index", None)
        self.__dict__.pop("lookup", None)

    def reload_index(self) -> MasterIndex:
        """The whole index, read afresh."""
        self.forget_index()
        return self.index

    def compact_index(self, force: bool = False) -> CompactionResult:
        """Write a new index generation (``sharded_index.compact``); hold a shared vault lock around it."""
        return compact(self.storage, self.cipher, force=force)

    def invalidate_catalog(self, keep_current: bool = False) -> list[str]:
        """Retire index generations (``sharded_index.invalidate_catalog``); under the exclusive vault lock."""
        return invalidate_catalog(self.storage, self.cipher, keep_current)

    def write_index(self, packs: IndexPacks) -> str:
        """Store an index object for ``packs`` in the index version this vault's format version uses."""
        return write_index(self.storage, packs, self.cipher, index_version(self.config.version))

    def load_lock_settings(self) -> None:
        """Read now what the first pack written would read first: the Object Lock settings its retention comes
        from (read once, vaultline.repository.object_lock). A step calls it beside its other start-up requests
        rather than pay it in front of its first upload."""
        if self.storage.lock_policy is not None:
            self.storage.lock_policy.retention_for(pack_key("0" * 64))

    def read_blob(self, blob_id: bytes) -> bytes:
        """Plaintext of a blob, authenticated and checked against its id."""
        location = self.lookup.get(blob_id)
        if location is None:
            raise ObjectMissing(f"{self.url}: blob {blob_id.hex()} is not in any index")
        entry = location.entry
        stored = self.storage.get_range(pack_key(location.pack_id), entry.offset, entry.stored_length)
        return self.decode_blob(stored, entry, location.pack_id)

    def decode_blob(self, stored: bytes | memoryview, entry: BlobEntry, pack_id: str) -> bytes:
        """Decrypt, decompress and verify one blob read from ``pack_id``."""
        return self.open_blob(stored, entry, pack_id)[1]

    def open_blob(self, stored: bytes | memoryview, entry: BlobEntry, pack_id: str) -> tuple[bytes, bytes]:
        """Decrypt and verify one blob read from ``pack_id``: its compressed payload and its plaintext."""
        what = f"{self.url}: blob {entry.id.hex()[:16]} in pack {pack_id[:16]}"
        if len(stored) != entry.stored_length:
            raise IntegrityError(f"{what}: expected {entry.stored_length} bytes, read {len(stored)} (truncated pack)")
        payload = self.cipher.open(stored, entry.id, what)
        data = decompress(payload, entry.compression, entry.raw_length, what)
        if len(data) != entry.raw_length or self.cipher.chunk_id(data) != entry.id:
            raise IntegrityError(f"{what}: content does not hash to its id")
        return payload, data

    def read_verified_pack_entries(self, pack_id: str) -> list[BlobEntry]:
        """Entries of a pack read from its own header, after checking the whole pack hashes to its name."""
        data = self.storage.get(pack_key(pack_id))
        what = f"{self.url}: pack {pack_id}"
        if blake3.blake3(data).hexdigest() != pack_id:
            raise IntegrityError(f"{what}: content does not hash to its name")
        return read_pack_entries(data, self.cipher, what)
