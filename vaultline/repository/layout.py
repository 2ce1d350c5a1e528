"""The vault's key layout, in one place: every key and prefix a vault holds (docs/vault-format.md, "Layout").

Storage backends know bytes and keys only; the repository, the runs and the infrastructure (the IAM grants, the
lifecycle rules) all name vault keys through this module, so the layout can change in one place, with the format
version.
"""

from __future__ import annotations

import re

CONFIG_KEY = "config"  # the plaintext vault config
OBJECT_LOCK_KEY = "object-lock"  # the Object Lock settings of the vault's writes (plaintext JSON)
DATA_PREFIX = "data/"  # packs: data/<first two hex digits>/<pack id>
INDEX_PREFIX = "index/"  # index objects: index/<index id>
MANIFEST_PREFIX = "recovery-points/"  # manifests: recovery-points/<recovery point id>
LOCK_PREFIX = "locks/"  # vault locks: locks/<lock id>
KEYS_PREFIX = "keys/"  # key slots: keys/<slot id> (plaintext JSON), each a further wrapping of the data key
HOLDS_PREFIX = "holds/"  # legal hold records: holds/<recovery point id> (plaintext JSON)
STAGING_PREFIX = "staging/"  # runs of the workflows: staging/<run id>/..., and the maps' result files
# A consolidated index generation (docs/vault-format.md, section 9.5): its catalog, written last, makes it exist;
# its pack table, shards and filter sit under its own prefix. Outside index/, so readers that predate them never
# see them; derived from index objects, so not under Object Lock and deletable by prune.
CATALOG_PREFIX = "index-catalogs/"  # index-catalogs/<generation>
GENERATION_PREFIX = "index-shards/"  # index-shards/<generation>/{packs,filter,<shard as 4 hex>}
# What a recovery point needs and Object Lock protects; everything else (config, locks, staging) stays deletable.
LOCKED_PREFIXES = (DATA_PREFIX, INDEX_PREFIX, MANIFEST_PREFIX)
# Objects a vault creates once, with a conditional write, and never replaces.
CREATED_ONCE = (CONFIG_KEY, OBJECT_LOCK_KEY)

# Inside a run's prefix (vaultline.runs.protocol).
RUN_DOCUMENT = "run.json"
WORK_LIST = "work-list.json"
RESULTS = "results/"
EXPORT = "export"  # a DynamoDB export's files, written by DynamoDB itself
MAP_RESULTS_PREFIX = f"{STAGING_PREFIX}map-results/"  # the Distributed Maps' ResultWriter files

_PACK_KEY = re.compile(r"^data/([0-9a-f]{2})/(\1[0-9a-f]{62})$")


def pack_key(pack_id: str) -> str:
    """The key of a pack: spread over 256 prefixes so listings and S3 partitions stay small."""
    return f"{DATA_PREFIX}{pack_id[:2]}/{pack_id}"


def pack_id_of_key(key: str) -> str | None:
    """The pack id a storage key names, or None for anything else found under ``data/`` (stray files such as
    ``.DS_Store`` or a copy tool's temporaries are not packs and must not stop a backup)."""
    match = _PACK_KEY.match(key)
    return match.group(2) if match else None


def index_key(index_id: str) -> str:
    return INDEX_PREFIX + index_id


def catalog_key(generation: str) -> str:
    return CATALOG_PREFIX + generation


def generation_prefix(generation: str) -> str:
    return f"{GENERATION_PREFIX}{generation}/"


def generation_packs_key(generation: str) -> str:
    return generation_prefix(generation) + "packs"


def generation_filter_key(generation: str) -> str:
    return generation_prefix(generation) + "filter"


def shard_key(generation: str, number: int) -> str:
    return f"{generation_prefix(generation)}{number:04x}"


def manifest_key(recovery_point: str) -> str:
    return MANIFEST_PREFIX + recovery_point


def key_slot_key(slot_id: str) -> str:
    return KEYS_PREFIX + slot_id


def hold_key(recovery_point: str) -> str:
    return HOLDS_PREFIX + recovery_point


def lock_key(lock_id: str) -> str:
    return LOCK_PREFIX + lock_id


def run_prefix(run_id: str) -> str:
    """The prefix of one run of a workflow in the staging area."""
    return f"{STAGING_PREFIX}{run_id}/"


def export_prefix(run_id: str) -> str:
    """Where a DynamoDB export of a backup run writes its files (the run's prefix, so the run's cleanup ends it)."""
    return run_prefix(run_id) + EXPORT
