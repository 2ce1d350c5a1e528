"""Every Lambda function of the stack, once: its handler, size, and the traits its role is granted by.

``infra/functions.py`` creates one function per entry of :data:`FUNCTIONS` and derives the vault grants from the
traits; the workflows and the maintenance construct name the functions by these entries (``functions[BACKUP_WORKER]``),
so a function that is not registered cannot be referenced, and one that is registered is created with its grants.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra import constants as c
from vaultline.repository import layout


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function: ``functions/<name>.py``'s ``handler``, its size, and what its role is granted."""

    name: str
    memory_mb: int
    description: str
    timeout_minutes: int = c.FUNCTION_TIMEOUT_MINUTES
    # Lambda's /tmp, for a step that spills to disk (512 MB is Lambda's default and free).
    ephemeral_storage_mb: int = c.DEFAULT_EPHEMERAL_STORAGE_MB
    # Fanned out by a Distributed Map: gets the settings' reserved concurrency, and the dashboard's worker graphs.
    worker: bool = False
    # Creates a vault on first use: may write the created-once objects (config), and only as a conditional create.
    creates_vault: bool = False
    # Writes what Object Lock protects (packs, indexes, manifests): puts with a retention date.
    writes_locked: bool = False
    # Ends a run: tidies the run's staging area and releases its shared vault lock.
    ends_run: bool = False
    # Maintenance: the vault prefixes it may delete under (and so reads Object Lock state there).
    deletes: tuple[str, ...] = ()
    # Maintenance: reads Object Lock state without deleting (prune's Decide and Sweep find what is held).
    reads_lock_state: bool = False
    # The only vault prefixes it may write (empty: anywhere but what the denies keep out).
    writes: tuple[str, ...] = ()
    # Takes and releases a shared vault lock without ending a run: may delete under locks/ only.
    holds_lock: bool = False
    # Lock extension: reads and extends (never shortens) the Object Lock retention of what recovery points need.
    extends_locks: bool = False
    # A Copy step: reads the plans' copy targets (or assumes their roles), writes and deletes only under these
    # prefixes of a target vault.
    copy_target_writes: tuple[str, ...] = ()
    copy_target_deletes: tuple[str, ...] = ()

    @property
    def copies(self) -> bool:
        """A step of the Copy machine (it opens the plans' copy targets)."""
        return bool(self.copy_target_writes or self.copy_target_deletes)

    @property
    def handler(self) -> str:
        """The handler string Lambda resolves in the functions' code asset."""
        return f"{self.name}.handler"

    @property
    def construct_id(self) -> str:
        """``backup_prepare`` -> ``BackupPrepare`` (the logical ids in the template start with it)."""
        return "".join(part.title() for part in self.name.split("_"))


# What each maintenance function may delete in the vault (vaultline/repository/layout.py's prefixes).
FORGET_DELETES = (layout.MANIFEST_PREFIX,)
PRUNE_DELETES = (
    layout.DATA_PREFIX,
    layout.INDEX_PREFIX,
    layout.CATALOG_PREFIX,
    layout.GENERATION_PREFIX,
    layout.LOCK_PREFIX,
)

# Memory: 1769 MB (a full vCPU) for the CPU-bound workers, verify items and the drill; Prepare is I/O-bound; Commit and
# prune hold a run's entries or every live blob id while they merge or mark (constants.py explains each figure).
BACKUP_PREPARE = FunctionSpec(
    "backup_prepare",
    c.PREPARE_MEMORY_MB,
    "Open a recovery point, write work list",
    creates_vault=True,
    # Prepare writes an index for packs a crashed run left unindexed.
    writes_locked=True,
)
BACKUP_WORKER = FunctionSpec(
    "backup_worker", c.WORKER_MEMORY_MB, "Chunk, compress, encrypt, pack a batch", worker=True, writes_locked=True
)
BACKUP_COMMIT = FunctionSpec(
    "backup_commit", c.COMMIT_MEMORY_MB, "Merge worker results, write manifest", writes_locked=True, ends_run=True
)
RESTORE_PREPARE = FunctionSpec("restore_prepare", c.PREPARE_MEMORY_MB, "Select objects, write work list")
RESTORE_WORKER = FunctionSpec("restore_worker", c.WORKER_MEMORY_MB, "Rebuild and write a batch of objects", worker=True)
RESTORE_FINISH = FunctionSpec("restore_finish", c.FINISH_MEMORY_MB, "Summarise a restore", ends_run=True)
ABORT = FunctionSpec(
    "abort",
    c.ABORT_MEMORY_MB,
    "Record a failed run, clean its staging area",
    timeout_minutes=c.ABORT_TIMEOUT_MINUTES,
    ends_run=True,
)
DDB_BACKUP_PREPARE = FunctionSpec(
    "ddb_backup_prepare",
    c.PREPARE_MEMORY_MB,
    "Describe a table, stage segments",
    creates_vault=True,
    writes_locked=True,
)
DDB_EXPORT_STATUS = FunctionSpec(
    "ddb_export_status",
    c.ABORT_MEMORY_MB,
    "Poll a table export, stage its files",
    timeout_minutes=c.ABORT_TIMEOUT_MINUTES,
)
DDB_SEGMENT_WORKER = FunctionSpec(
    "ddb_segment_worker", c.WORKER_MEMORY_MB, "Scan one table segment into packs", worker=True, writes_locked=True
)
DDB_BACKUP_COMMIT = FunctionSpec(
    "ddb_backup_commit", c.COMMIT_MEMORY_MB, "Merge segment parts, write manifest", writes_locked=True, ends_run=True
)
DDB_RESTORE_PREPARE = FunctionSpec("ddb_restore_prepare", c.PREPARE_MEMORY_MB, "Create or check the target table")
DDB_RESTORE_WORKER = FunctionSpec(
    "ddb_restore_worker", c.WORKER_MEMORY_MB, "Write one segment part's items", worker=True
)
DDB_RESTORE_FINISH = FunctionSpec("ddb_restore_finish", c.FINISH_MEMORY_MB, "Summarise a table restore", ends_run=True)
APPLY_RETENTION = FunctionSpec(
    "apply_retention", c.FINISH_MEMORY_MB, "Apply a plan's keep rules to a source", deletes=FORGET_DELETES
)
# Forget (vaultline/operations/forget_run.py states each step's ceiling): the plan lists the recovery points (100
# bytes each); read holds one batch of headers, GETs in flight (I/O-bound); decide holds one partition's points,
# about 600 bytes each with their decisions, and is the only one that deletes (manifests it drops, after a HEAD each);
# the summary adds up small results. They write nothing in the vault but their run's staging.
MAINTENANCE_FORGET_PLAN = FunctionSpec(
    "maintenance_forget_plan", c.PREPARE_MEMORY_MB, "Stage a forget's batches", writes=(layout.STAGING_PREFIX,)
)
MAINTENANCE_FORGET_READ = FunctionSpec(
    "maintenance_forget_read",
    c.FINISH_MEMORY_MB,
    "Stage a batch's recovery points for the keep rules",
    writes=(layout.STAGING_PREFIX,),
)
MAINTENANCE_FORGET_DECIDE = FunctionSpec(
    "maintenance_forget_decide",
    c.PREPARE_MEMORY_MB,
    "Apply keep rules, delete dropped manifests",
    writes=(layout.STAGING_PREFIX,),
    deletes=FORGET_DELETES,
)
MAINTENANCE_FORGET_SUMMARY = FunctionSpec(
    "maintenance_forget_summary", c.FINISH_MEMORY_MB, "Add up a forget", writes=(layout.STAGING_PREFIX,), ends_run=True
)
# Prune's steps (vaultline/operations/prune.py states each one's memory ceiling). Start lists the packs into 40
# bytes each (26 MiB at 650,000 packs) and takes or releases locks: I/O-bound. Mark reads entry streams through the
# compact index (34 bytes per blob: about 1 GiB at 30 million chunks) and parses JSON: a full vCPU. Plan holds one
# partition's runs and the packs listing (tens of MiB at 30 million chunks), Decide the removed packs' ids and one
# partial per partition: I/O-bound. Sweep hashes and copies packs: a full vCPU. Finish holds the held and new packs'
# ids and one index object. Only Finish deletes packs and index objects; Start and Abort only locks and staging.
# Their maps' MaxConcurrency bounds them, so they take no reserved concurrency (not `worker`).
MAINTENANCE_PRUNE = FunctionSpec(
    "maintenance_prune", c.PREPARE_MEMORY_MB, "Start a prune: exclusive lock, stage its work", ends_run=True
)
MAINTENANCE_PRUNE_MARK = FunctionSpec(
    "maintenance_prune_mark", c.WORKER_MEMORY_MB, "Mark live blobs of a batch into sorted runs"
)
MAINTENANCE_PRUNE_PLAN = FunctionSpec(
    "maintenance_prune_plan", c.PREPARE_MEMORY_MB, "Merge a partition into per-pack partials"
)
MAINTENANCE_PRUNE_DECIDE = FunctionSpec(
    "maintenance_prune_decide", c.PREPARE_MEMORY_MB, "Classify packs, stage the sweep", reads_lock_state=True
)
MAINTENANCE_PRUNE_SWEEP = FunctionSpec(
    "maintenance_prune_sweep",
    c.WORKER_MEMORY_MB,
    "Repack a batch of packs, find held ones",
    writes_locked=True,
    reads_lock_state=True,
)
MAINTENANCE_PRUNE_FINISH = FunctionSpec(
    "maintenance_prune_finish",
    c.PREPARE_MEMORY_MB,
    "Replace indexes, delete packs, unlock",
    writes_locked=True,
    ends_run=True,
    deletes=PRUNE_DELETES,
)
MAINTENANCE_PRUNE_ABORT = FunctionSpec(
    "maintenance_prune_abort",
    c.ABORT_MEMORY_MB,
    "Unlock a failed prune, clean its staging",
    timeout_minutes=c.ABORT_TIMEOUT_MINUTES,
    ends_run=True,
)
# Compact: writes a new index generation (its shards, packs table and filter, catalog last) and its shared lock,
# nothing else; it deletes only that lock. It sorts the index rows in bounded pieces, spilled to /tmp (34 bytes a
# row): constants.COMPACT_MEMORY_MB and COMPACT_EPHEMERAL_STORAGE_MB say where its ceiling is.
MAINTENANCE_COMPACT = FunctionSpec(
    "maintenance_compact",
    c.COMPACT_MEMORY_MB,
    "Compact the dedup index into a sharded generation",
    ephemeral_storage_mb=c.COMPACT_EPHEMERAL_STORAGE_MB,
    writes=(layout.CATALOG_PREFIX, layout.GENERATION_PREFIX, layout.LOCK_PREFIX),
    holds_lock=True,
)
# Verify: the plan and the recovery point items hold the index (34 bytes a blob) as prune does; the items read and
# decode packs, CPU-bound like the backup workers (a full vCPU); the summary adds up small results.
MAINTENANCE_VERIFY_PLAN = FunctionSpec(
    "maintenance_verify_plan", c.COMMIT_MEMORY_MB, "Stage the batches of packs and recovery points to verify"
)
# Not a reserved-concurrency worker: it runs once a day, its map's MaxConcurrency bounds it, and a reservation
# would take account concurrency from the backups all day.
MAINTENANCE_VERIFY_ITEM = FunctionSpec(
    "maintenance_verify_item", c.WORKER_MEMORY_MB, "Verify a batch of packs or recovery points"
)
MAINTENANCE_VERIFY_SUMMARY = FunctionSpec(
    "maintenance_verify_summary", c.FINISH_MEMORY_MB, "Add up a verify's results", ends_run=True
)
# Drill: the plan streams a manifest into batches (I/O-bound); the items restore, read back and hash, CPU-bound like
# the restore workers; the summary adds up and deletes the scratch copy.
MAINTENANCE_DRILL_PLAN = FunctionSpec("maintenance_drill_plan", c.PREPARE_MEMORY_MB, "Stage a restore drill's batches")
MAINTENANCE_DRILL_ITEM = FunctionSpec(
    "maintenance_drill_item", c.WORKER_MEMORY_MB, "Restore a drill batch into scratch space, compare"
)
MAINTENANCE_DRILL_SUMMARY = FunctionSpec(
    "maintenance_drill_summary", c.FINISH_MEMORY_MB, "Add up a drill, delete its scratch copy", ends_run=True
)

# Lock extension (vaultline/operations/lock_extension.py states each step's ceiling): the plan lists the recovery
# points (100 bytes each); mark streams their blobs through the dedup index like the backup workers (a full vCPU)
# and holds a batch's distinct pack ids; extend holds one partition's pack ids and is latency-bound (HEADs and
# PutObjectRetention, 16 in flight); the summary adds up small results. They write only their run's staging and
# retention dates, and delete nothing but that staging.
MAINTENANCE_LOCK_PLAN = FunctionSpec(
    "maintenance_lock_plan",
    c.PREPARE_MEMORY_MB,
    "Stage a lock extension's batches",
    writes=(layout.STAGING_PREFIX,),
    extends_locks=True,
)
MAINTENANCE_LOCK_MARK = FunctionSpec(
    "maintenance_lock_mark",
    c.WORKER_MEMORY_MB,
    "Keep a batch's manifests locked, stage its packs",
    writes=(layout.STAGING_PREFIX,),
    extends_locks=True,
)
MAINTENANCE_LOCK_EXTEND = FunctionSpec(
    "maintenance_lock_extend",
    c.PREPARE_MEMORY_MB,
    "Extend the retention of referenced packs",
    writes=(layout.STAGING_PREFIX,),
    extends_locks=True,
)
MAINTENANCE_LOCK_SUMMARY = FunctionSpec(
    "maintenance_lock_summary",
    c.FINISH_MEMORY_MB,
    "Add up a lock extension",
    writes=(layout.STAGING_PREFIX,),
    ends_run=True,
)
# The freshness check asks CloudWatch for sums and publishes them: it touches no vault object but what every function
# is granted (the vault grants are uniform), and writes nowhere but staging/.
FRESHNESS_CHECK = FunctionSpec(
    "freshness_check",
    c.ABORT_MEMORY_MB,
    "Count heartbeats over windows longer than an alarm's",
    timeout_minutes=c.ABORT_TIMEOUT_MINUTES,
    writes=(layout.STAGING_PREFIX,),
)
# Copy (vaultline/runs/copy_steps.py states the ceilings): the source vault is only read, but for the run's staging;
# the target gets its shared lock (Prepare), packs and index objects (items; a lock refresh), the entry stream and
# the manifest (Commit, which also forgets there by copy_to.keep), and loses only its lock and forgotten manifests.
COPY_STAGING = (layout.STAGING_PREFIX,)
COPY_PREPARE = FunctionSpec(
    "copy_prepare",
    c.PREPARE_MEMORY_MB,
    "Lock the copy target, stage a recovery point's batches",
    writes=COPY_STAGING,
    ends_run=True,
    copy_target_writes=(layout.LOCK_PREFIX,),
    copy_target_deletes=(layout.LOCK_PREFIX,),
)
COPY_ITEM = FunctionSpec(
    "copy_item",
    c.WORKER_MEMORY_MB,
    "Copy a batch's missing chunks into the target vault",
    writes=COPY_STAGING,
    copy_target_writes=(layout.DATA_PREFIX, layout.INDEX_PREFIX, layout.LOCK_PREFIX),
)
COPY_COMMIT = FunctionSpec(
    "copy_commit",
    c.COMMIT_MEMORY_MB,
    "Write the copy's manifest in the target, apply its keep rules",
    writes=COPY_STAGING,
    ends_run=True,
    copy_target_writes=(layout.DATA_PREFIX, layout.INDEX_PREFIX, layout.MANIFEST_PREFIX),
    copy_target_deletes=(layout.LOCK_PREFIX, layout.MANIFEST_PREFIX),
)
COPY_ABORT = FunctionSpec(
    "copy_abort",
    c.ABORT_MEMORY_MB,
    "Unlock the target of a failed copy, clean its staging",
    timeout_minutes=c.ABORT_TIMEOUT_MINUTES,
    writes=COPY_STAGING,
    ends_run=True,
    copy_target_deletes=(layout.LOCK_PREFIX,),
)
COPY_FUNCTIONS = (COPY_PREPARE, COPY_ITEM, COPY_COMMIT, COPY_ABORT)

# In the order the template has always listed them: the S3 path, the DynamoDB path, retention and maintenance.
FUNCTIONS: tuple[FunctionSpec, ...] = (
    BACKUP_PREPARE,
    BACKUP_WORKER,
    BACKUP_COMMIT,
    RESTORE_PREPARE,
    RESTORE_WORKER,
    RESTORE_FINISH,
    ABORT,
    DDB_BACKUP_PREPARE,
    DDB_EXPORT_STATUS,
    DDB_SEGMENT_WORKER,
    DDB_BACKUP_COMMIT,
    DDB_RESTORE_PREPARE,
    DDB_RESTORE_WORKER,
    DDB_RESTORE_FINISH,
    APPLY_RETENTION,
    MAINTENANCE_FORGET_PLAN,
    MAINTENANCE_FORGET_READ,
    MAINTENANCE_FORGET_DECIDE,
    MAINTENANCE_FORGET_SUMMARY,
    MAINTENANCE_PRUNE,
    MAINTENANCE_VERIFY_PLAN,
    MAINTENANCE_VERIFY_ITEM,
    MAINTENANCE_VERIFY_SUMMARY,
    MAINTENANCE_DRILL_PLAN,
    MAINTENANCE_DRILL_ITEM,
    MAINTENANCE_DRILL_SUMMARY,
    MAINTENANCE_PRUNE_MARK,
    MAINTENANCE_PRUNE_PLAN,
    MAINTENANCE_PRUNE_DECIDE,
    MAINTENANCE_PRUNE_SWEEP,
    MAINTENANCE_PRUNE_FINISH,
    MAINTENANCE_PRUNE_ABORT,
    MAINTENANCE_COMPACT,
    MAINTENANCE_LOCK_PLAN,
    MAINTENANCE_LOCK_MARK,
    MAINTENANCE_LOCK_EXTEND,
    MAINTENANCE_LOCK_SUMMARY,
    FRESHNESS_CHECK,
    *COPY_FUNCTIONS,
)
WORKERS = tuple(spec for spec in FUNCTIONS if spec.worker)
