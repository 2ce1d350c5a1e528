"""Names and numbers the infrastructure shares, in one place. Handlers and the CLI rely on several of them."""

from __future__ import annotations

from pathlib import Path

from vaultline.repository import layout

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = ROOT / "functions"
LAYER_DIR = ROOT / "build" / "layer"
LAYER_BUILD_SCRIPT = ROOT / "layers" / "build.py"

# --- context keys (cdk.json) and their defaults -------------------------------------------------------------
CTX_PLANS_FILE = "plansFile"
CTX_STACK_NAME = "stackName"
CTX_OBJECT_LOCK_MODE = "objectLockMode"
CTX_OBJECT_LOCK_DAYS = "objectLockRetentionDays"
CTX_OBJECT_LOCK_MIN_DAYS = "objectLockMinDays"
CTX_OBJECT_LOCK_MAX_DAYS = "objectLockMaxDays"
CTX_NONCURRENT_DAYS = "noncurrentVersionExpirationDays"
CTX_RESTORE_TARGETS = "restoreTargetBuckets"
CTX_RESTORE_TARGET_TABLES = "restoreTargetTables"
CTX_MAINTENANCE_SCHEDULE = "maintenanceSchedule"
CTX_MAINTENANCE_DRILL = "maintenanceDrill"
CTX_EXPORT_POLL_SECONDS = "exportPollSeconds"
CTX_NOTIFICATION_EMAIL = "notificationEmail"
CTX_WORKER_RESERVED_CONCURRENCY = "workerReservedConcurrency"
CTX_VAULT_ACCOUNT = "vaultAccount"

DEFAULT_PLANS_FILE = "plans.yaml"
DEFAULT_STACK_NAME = "Vaultline"
DEFAULT_OBJECT_LOCK_DAYS = 0
DEFAULT_NONCURRENT_DAYS = 30
DEFAULT_RESTORE_TARGETS = ("vaultline-*",)
DEFAULT_RESTORE_TARGET_TABLES = ("vaultline-*",)
DEFAULT_MAINTENANCE_SCHEDULE = "cron(0 3 * * ? *)"  # daily, 03:00 UTC

# --- vault layout (vaultline/repository/layout.py owns it; the grants and lifecycle rules name its keys) -------
STAGING_PREFIX = layout.STAGING_PREFIX
# The maps' ResultWriter prefix: Step Functions adds the "/" and the execution's own folder.
MAP_RESULTS_PREFIX = layout.MAP_RESULTS_PREFIX.rstrip("/")
STAGING_EXPIRATION_DAYS = 7
ABORT_MULTIPART_DAYS = 1
ACCESS_LOG_EXPIRATION_DAYS = 365

# --- Lambda ------------------------------------------------------------------------------------------------
SERVICE_NAME = "vaultline"
METRICS_NAMESPACE = "Vaultline"
LOG_LEVEL = "INFO"
# 1769 MB is where Lambda grants one full vCPU; chosen from measurement (docs/performance.md, lambda_cost_bench.py):
# the S3 backup worker's cost per GB is flat below it (less memory is as much slower as it is cheaper per second;
# $0.107 per TiB at 512 MB, $0.113 here) and grows above it (a second vCPU cannot double a pipeline whose chunker
# holds the GIL: $0.13 at 2048 MB, $0.23 at 3538 MB), while a batch runs 3.3x faster here than at 512 MB, the least
# that fits (read-ahead 72 MiB, packs in flight 48 MiB, the runtime ~150 MB).
WORKER_MEMORY_MB = 1769
# Prepare lists the source and streams the work list out in batches: I/O-bound, modest memory.
PREPARE_MEMORY_MB = 1024
# Commit merges every worker's entries into one manifest held in memory; millions of objects need room.
COMMIT_MEMORY_MB = 2048
# Compaction sorts the index rows in bounded pieces (vaultline/repository/spilled_rows.py): 64 MiB of rows in memory,
# the rest spilled to /tmp at 34 bytes a row, one sixty-fourth sorted at a time; beside them it holds the pack table
# and the filter being built (2 bytes a row, some 8 while it is sealed). bench/scale_bench.py's index table: 106,
# 144 and 176 MiB at its peak at 1, 3 and 6 million chunks (227 MiB at 3 million when it held the whole index), so
# about 14 bytes a chunk over ~90 MiB fixed: some 510 MiB at 30 million, 1024 MB at about 65 million; /tmp's
# 120 million rows and the 15 minutes (28 s for 6 million here) come later.
COMPACT_MEMORY_MB = 1024
# Lambda's /tmp for compaction's spilled rows: 34 bytes a row, so 4096 MB hold about 120 million rows.
COMPACT_EPHEMERAL_STORAGE_MB = 4096
DEFAULT_EPHEMERAL_STORAGE_MB = 512
FINISH_MEMORY_MB = 512
ABORT_MEMORY_MB = 256
FUNCTION_TIMEOUT_MINUTES = 15  # Lambda's maximum; workers return early on their own time budget.
ABORT_TIMEOUT_MINUTES = 5
LOG_RETENTION_DAYS = 30

# --- Step Functions contract (the handlers are written against these) --------------------------------------
RETRYABLE_ERROR = "VaultlineRetryable"
LAMBDA_TRANSIENT_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
# How Lambda reports a function that ran out of its time (the invoke returns; the error is the function's) and an
# invoke the Lambda client gave up waiting for. Retried where a step is idempotent (workers, the export poll).
# A worker whose runtime died mid-batch (its host failed, it was killed) reports Runtime.ExitError: idempotent steps
# run it again, as they would a timed-out one.
LAMBDA_TIMEOUT_ERRORS = (
    "Sandbox.Timedout",
    "Lambda.ClientExecutionTimeoutException",
    "States.Timeout",
    "Runtime.ExitError",
)
RETRY_INTERVAL_SECONDS = 2
RETRY_BACKOFF_RATE = 2
RETRY_MAX_ATTEMPTS = 6
# The task's own timeout, a backstop for an invoke whose response never arrives: Lambda ends a function at its own
# timeout and reports Sandbox.Timedout, so the task waits only a few seconds longer than that.
TASK_TIMEOUT_MARGIN_SECONDS = 10
STATE_MACHINE_TIMEOUT_HOURS = 24
# How long the backup waits between polls of a DynamoDB export (exports take minutes even for tiny tables).
EXPORT_POLL_SECONDS = 30
# Step Functions fails an execution past 25,000 history events. One poll round (Wait, the status task, the poll
# counter and the Choice) writes at most EVENTS_PER_EXPORT_POLL of them; the rest of a backup (Prepare, the map,
# Commit, Retention, events, Abort) fits in the reserve. The loop fails clearly after the polls that fit.
HISTORY_EVENT_LIMIT = 25_000
HISTORY_EVENT_RESERVE = 1_000
EVENTS_PER_EXPORT_POLL = 14
MAX_EXPORT_POLLS = (HISTORY_EVENT_LIMIT - HISTORY_EVENT_RESERVE) // EVENTS_PER_EXPORT_POLL
EXPORT_POLL_LIMIT_ERROR = "ExportPollLimit"

EVENT_SOURCE = "vaultline"
BACKUP_SUCCEEDED = "Vaultline Backup Succeeded"
BACKUP_FAILED = "Vaultline Backup Failed"
RESTORE_SUCCEEDED = "Vaultline Restore Succeeded"
RESTORE_FAILED = "Vaultline Restore Failed"
MAINTENANCE_SUCCEEDED = "Vaultline Maintenance Succeeded"
MAINTENANCE_FAILED = "Vaultline Maintenance Failed"
COPY_SUCCEEDED = "Vaultline Copy Succeeded"
COPY_FAILED = "Vaultline Copy Failed"
SFN_STATUS_CHANGE = "Step Functions Execution Status Change"
SFN_FAILED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")

# --- Scheduler ---------------------------------------------------------------------------------------------
SCHEDULE_PREFIX = "vaultline-"
SCHEDULE_RETRY_ATTEMPTS = 3
SCHEDULE_MAX_EVENT_AGE_SECONDS = 3600  # a backup started more than an hour late is better skipped than piled up
MAINTENANCE_SCHEDULE_NAME = "vaultline-maintenance"
FRESHNESS_SCHEDULE_NAME = "vaultline-freshness-check"

# --- Maintenance (infra/maintenance.py) ---------------------------------------------------------------------
# Prune takes the vault's exclusive lock; a running backup holds a shared one. Retry for about half an hour:
# 60 + 120 + 240 + 480 + 960 s of waiting over five attempts (a backup outlasting that is retried the next day).
VAULT_LOCKED_ERROR = "VaultLocked"
LOCKED_RETRY_INTERVAL_SECONDS = 60
LOCKED_RETRY_BACKOFF_RATE = 2
LOCKED_RETRY_MAX_ATTEMPTS = 5
# Reserved concurrency of each worker function: a backup's fan-out cannot starve the account's other functions
# of concurrency, nor be starved by them. AWS keeps at least 100 of an account's concurrency unreserved: four
# workers at this value need an account limit of 100 + 4 x 100 (the default limit is 1000). 0: not reserved.
WORKER_RESERVED_CONCURRENCY = 100
VERIFY_PARTS = 7  # the scheduled verify reads 1/7 of the packs a day: all of them every week
DRILL_SCRATCH_PREFIX = "drill-scratch"
DRILL_SCRATCH_EXPIRATION_DAYS = 1

# --- CDK ---------------------------------------------------------------------------------------------------
# Feature flags the constructs rely on; cdk.json sets them too, build_app() makes sure tests get the same.
FEATURE_FLAGS = {
    # Without it CDK renders only the deprecated ResultWriter (and silently drops ResultWriterV2).
    "@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2": True,
    # Grant S3 log delivery through the bucket policy instead of the legacy LogDeliveryWrite ACL.
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
}

OUTPUT_BACKUP_STATE_MACHINE = "BackupStateMachineArn"
OUTPUT_RESTORE_STATE_MACHINE = "RestoreStateMachineArn"
OUTPUT_MAINTENANCE_STATE_MACHINE = "MaintenanceStateMachineArn"
OUTPUT_COPY_STATE_MACHINE = "CopyStateMachineArn"
OUTPUT_VAULT_BUCKET = "VaultBucketName"
OUTPUT_VAULT_KEY = "VaultKeyArn"
OUTPUT_PLANS = "Plans"
OUTPUT_NOTIFICATION_TOPIC = "NotificationTopicArn"
