"""Vaultline workflow benchmark: the real state machines on the embedded AWS, with request counts and a cost model.

Synthesizes the CDK app, deploys it into moto's server in this process, fills a source bucket with a seeded sample
(mostly text and JSON logs, some gzip and random binary), then runs the backup state machine (first and incremental
run, after changing ~5% of the objects) and the restore state machine. For each run it prints objects/s and MB/s,
S3 requests by operation per GiB of source and per GiB stored, KMS and Lambda requests, Step Functions state
transitions, and an estimated AWS bill per TB backed up and per TB-month stored, next to AWS Backup's prices.

Run ``.venv/bin/python bench/workflow_bench.py`` (300 objects, 64 MiB) or ``--quick`` (60 objects, 8 MiB). The
instrumentation (bench/instrument.py) hooks moto and the embedded Lambda router in this process only. MB/s are
10^6 bytes per second of source bytes; GiB are 2^30 bytes; a TB is 1024 GiB, as AWS bills GB as 2^30 bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import corpus
from botocore.config import Config
from instrument import (
    BENCH_AGENT,
    S3_GROUPS,
    HandlerCall,
    HandlerTimer,
    RequestCounter,
    RequestLog,
    StateCounter,
    overlap,
    s3_group,
    s3_tier,
)

from vaultline.cli.stack import StackInfo, find_stack, root_cause
from vaultline.repository.layout import STAGING_PREFIX
from vaultline.runs.backup_parts import BATCH_MAX_BYTES, BATCH_MAX_OBJECTS
from vaultline_dev.embedded import EmbeddedAws, deploy_template
from vaultline_dev.embedded.deploy import DeployedStack, register_stack
from vaultline_dev.embedded.lambdas import invocations
from vaultline_dev.embedded.synth import synthesize

PROJECT = Path(__file__).resolve().parent.parent
WORK = Path(__file__).resolve().parent / ".work"
STACK = "Vaultline"
SOURCE_BUCKET = "vaultline-bench-source"
# The bench stack's plans: IAM lets the functions read only the sources a plan names (bench/plans.yaml).
PLANS_FILE = Path(__file__).resolve().parent / "plans.yaml"
RESTORE_BUCKET = "vaultline-bench-restore"
MB = 1_000_000
MIB = 1024 * 1024
GIB = 1024**3
TB = 1024 * GIB  # AWS bills "GB" as 2^30 bytes; a TB here is 1024 of them.
POLL_SECONDS = 0.1
# Services whose requests a handler waits on; time moto spent serving them is "emulator time" inside a handler.
HANDLER_SERVICES = ("s3", "kms", "events")

# --- Published us-east-1 prices (USD). Values as published on the pages below, entered 2026-11-28 for this bench;
# --- the script does not fetch them, so re-check the pages before quoting a figure. ---------------------------
# https://aws.amazon.com/lambda/pricing/ : Arm, first 6 billion GB-seconds per month.
LAMBDA_ARM_GB_SECOND = 0.0000133334
# https://aws.amazon.com/lambda/pricing/ : requests, any architecture.
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
# https://aws.amazon.com/s3/pricing/ : S3 Standard, first 50 TB per month.
S3_STANDARD_GB_MONTH = 0.023
# https://aws.amazon.com/s3/pricing/ : PUT, COPY, POST, LIST requests (S3 Standard).
S3_PUT_TIER_REQUEST = 0.005 / 1000
# https://aws.amazon.com/s3/pricing/ : GET, SELECT and all other requests (S3 Standard); DELETE is free.
S3_GET_TIER_REQUEST = 0.0004 / 1000
# https://aws.amazon.com/step-functions/pricing/ : Standard workflows, per state transition.
SFN_PER_TRANSITION = 0.025 / 1000
# https://aws.amazon.com/kms/pricing/ : API requests (symmetric keys).
KMS_PER_REQUEST = 0.03 / 10_000
# https://aws.amazon.com/eventbridge/pricing/ : custom events published with PutEvents, per 64 KB chunk.
EVENTS_PER_EVENT = 1.00 / 1_000_000
# https://aws.amazon.com/backup/pricing/ : AWS Backup, us-east-1.
AWS_BACKUP_S3_WARM_GB_MONTH = 0.05  # Amazon S3 backup storage (warm)
AWS_BACKUP_DDB_WARM_GB_MONTH = 0.10  # DynamoDB backup storage (warm)
AWS_BACKUP_DDB_COLD_GB_MONTH = 0.03  # DynamoDB backup storage (cold)
AWS_BACKUP_DDB_RESTORE_GB = 0.02  # DynamoDB restore, per GB restored

# Share of objects per kind in the sample: ~80% compressible text and JSON, ~20% gzip and random binary.
KINDS: dict[str, tuple[float, str, str]] = {
    "dynamodb": (0.30, "exports/ddb", "application/json"),
    "applog": (0.20, "logs/app", "text/plain"),
    "access": (0.15, "logs/access", "text/plain"),
    "csv": (0.15, "warehouse/orders", "text/csv"),
    "gzip": (0.10, "archive", "application/gzip"),
    "binary": (0.10, "blobs", "application/octet-stream"),
}
EXTENSIONS = {"dynamodb": "json", "applog": "log", "access": "log", "csv": "csv", "gzip": "log.gz", "binary": "bin"}


def log(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--objects", type=int, default=300, help="objects in the sample (default %(default)s)")
    parser.add_argument("--mib", type=float, default=64, help="sample size in MiB (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="60 objects, 8 MiB: checks the script end to end")
    parser.add_argument("--seed", type=int, default=20261128, help="sample seed (default %(default)s)")
    parser.add_argument("--change", type=float, default=0.05, help="share of objects changed before run 2")
    args = parser.parse_args(argv)
    if args.quick:
        args.objects, args.mib = 60, 8
    return args


# --- the sample ---------------------------------------------------------------------------------------------


@dataclass
class SourceObject:
    """One object of the source bucket: its bytes, kind and put_object extras."""

    body: bytes
    kind: str
    extra: dict[str, Any] = field(default_factory=dict)


def make_sample(count: int, total: int, seed: int) -> dict[str, SourceObject]:
    """``count`` objects adding up to about ``total`` bytes, log-uniform sizes, kinds in the :data:`KINDS` shares."""
    rng = random.Random(seed)
    kinds = rng.choices(list(KINDS), weights=[share for share, _, _ in KINDS.values()], k=count)
    raw = [math.exp(rng.uniform(math.log(4096), math.log(4096 * 256))) for _ in range(count)]
    scale = total / sum(raw)
    objects: dict[str, SourceObject] = {}
    for index, (kind, size) in enumerate(zip(kinds, raw, strict=True)):
        spec = corpus.FileSpec(_key(kind, index), kind, max(1024, int(size * scale)), rng.getrandbits(63))
        objects[spec.rel] = SourceObject(corpus.file_bytes(spec), kind, _extra(kind, index))
    return objects


def _key(kind: str, index: int) -> str:
    return f"{KINDS[kind][1]}/2026/11/{index % 28 + 1:02d}/part-{index:05d}.{EXTENSIONS[kind]}"


def _extra(kind: str, index: int) -> dict[str, Any]:
    extra: dict[str, Any] = {"ContentType": KINDS[kind][2]}
    if kind == "gzip":
        extra |= {"ContentEncoding": "gzip", "Tagging": "tier=cold&team=data"}
    if kind == "dynamodb":
        extra["Metadata"] = {"source": "ddb-export", "part": str(index)}
    return extra


@dataclass
class Change:
    """What the day-2 mutation did."""

    appended: int = 0
    edited: int = 0
    added: int = 0
    deleted: list[str] = field(default_factory=list)


def mutate(objects: dict[str, SourceObject], share: float, seed: int) -> tuple[dict[str, SourceObject], Change]:
    """Change about ``share`` of the objects: append to text, edit binary in the middle, add and delete a few."""
    rng = random.Random(seed ^ 0xDA72)
    changed = dict(objects)
    summary = Change()
    chosen = rng.sample(sorted(objects), max(3, round(len(objects) * share)))
    n_side = max(1, len(chosen) // 8)
    summary.deleted = chosen[:n_side]
    for key in summary.deleted:
        del changed[key]
    for key in chosen[n_side:]:
        old = objects[key]
        if old.kind in corpus.TEXT_KINDS:
            extra_text = corpus.text_bytes(old.kind, rng, max(4096, len(old.body) // 20))
            changed[key] = SourceObject(old.body + extra_text, old.kind, old.extra)
            summary.appended += 1
        else:
            body = bytearray(old.body)
            middle = len(body) // 2
            body[middle : middle + 4096] = rng.randbytes(min(4096, len(body) - middle))
            changed[key] = SourceObject(bytes(body), old.kind, old.extra)
            summary.edited += 1
    for index in range(n_side):
        kind = rng.choice(corpus.TEXT_KINDS)
        spec = corpus.FileSpec(
            _key(kind, 90_000 + index), kind, rng.randrange(64 << 10, 768 << 10), rng.getrandbits(63)
        )
        changed[spec.rel] = SourceObject(corpus.file_bytes(spec), kind, _extra(kind, index))
        summary.added += 1
    return changed, summary


# --- the bench's own clients (marked, so the request counter leaves them out) --------------------------------


def bench_client(service: str) -> Any:
    """A client for set-up, polling and checks; its User-Agent keeps its requests out of the counts."""
    make: Any = boto3.client  # typed per literal service name; the bench passes names as str
    return make(service, config=Config(user_agent_extra=BENCH_AGENT, retries={"max_attempts": 10}))


def upload(objects: dict[str, SourceObject], bucket: str) -> None:
    s3 = bench_client("s3")
    for key, obj in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=obj.body, **obj.extra)


def apply_change(before: dict[str, SourceObject], after: dict[str, SourceObject], change: Change) -> None:
    s3 = bench_client("s3")
    for key in change.deleted:
        s3.delete_object(Bucket=SOURCE_BUCKET, Key=key)
    upload({k: v for k, v in after.items() if before.get(k) is not v}, SOURCE_BUCKET)


@dataclass
class Tally:
    """A number of objects and their bytes."""

    objects: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.objects += 1
        self.bytes += size


@dataclass
class VaultUsage:
    """The vault bucket's object versions: current ones outside staging (by top-level prefix), the run staging
    that is left, and the noncurrent versions and delete markers that versioning keeps."""

    current: Tally = field(default_factory=Tally)
    staging: Tally = field(default_factory=Tally)
    noncurrent: Tally = field(default_factory=Tally)
    delete_markers: int = 0
    staging_keys: list[str] = field(default_factory=list)
    by_prefix: Counter[str] = field(default_factory=Counter)


def vault_usage(bucket: str) -> VaultUsage:
    usage = VaultUsage()
    pages = bench_client("s3").get_paginator("list_object_versions").paginate(Bucket=bucket)
    for page in pages:
        usage.delete_markers += len(page.get("DeleteMarkers", []))
        for version in page.get("Versions", []):
            size, key = int(version["Size"]), str(version["Key"])
            if not version["IsLatest"]:
                usage.noncurrent.add(size)
            elif key.startswith(STAGING_PREFIX):
                usage.staging.add(size)
                usage.staging_keys.append(key)
            else:
                usage.current.add(size)
                usage.by_prefix[key.split("/", 1)[0] if "/" in key else key] += size
    return usage


def verify(objects: dict[str, SourceObject], bucket: str) -> list[str]:
    """Keys whose restored bytes differ from the source's (or are missing)."""
    s3 = bench_client("s3")
    bad = []
    for key, obj in objects.items():
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            body = None
        if body is None or hashlib.sha256(body).digest() != hashlib.sha256(obj.body).digest():
            bad.append(key)
    return bad


# --- running a state machine under the instruments -----------------------------------------------------------


@dataclass
class Instruments:
    """The three counters of bench/instrument.py, installed for the whole run."""

    requests: RequestCounter
    handlers: HandlerTimer
    states: StateCounter

    def take(self) -> tuple[RequestLog, list[HandlerCall], Counter[str]]:
        return self.requests.take(), self.handlers.take(), self.states.take()

    @classmethod
    def installed(cls, stack: ExitStack) -> Instruments:
        """All three counters, installed until ``stack`` closes."""
        return cls(
            stack.enter_context(RequestCounter().installed()),
            stack.enter_context(HandlerTimer().installed()),
            stack.enter_context(StateCounter().installed()),
        )


@dataclass
class Phase:
    """One state machine run and what it cost in requests, invocations, transitions and handler time."""

    name: str
    seconds: float
    output: dict[str, Any]
    requests: RequestLog
    calls: list[HandlerCall]
    states: Counter[str]
    parent_states: int
    invocations: Counter[str]
    errors: Counter[str]
    # A backup's figures: the source it was given, what it read of it (unchanged objects are not read), and the
    # bytes it added to the vault.
    source: Tally = field(default_factory=Tally)
    read: Tally = field(default_factory=Tally)
    stored_bytes: int = 0

    @property
    def transitions(self) -> int:
        """Billable transitions: every state entered (parent and children) plus one per retried attempt."""
        return sum(self.states.values()) + sum(self.errors.values())


def run_phase(name: str, instruments: Instruments, machine: str, payload: dict[str, Any]) -> Phase:
    """Start ``machine`` with ``payload``, wait for it, and collect what the instruments saw meanwhile."""
    sfn = bench_client("stepfunctions")
    calls_before, errors_before = Counter(invocations.calls), Counter(invocations.errors)
    instruments.take()
    started = time.perf_counter()
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(payload), name=f"bench-{time.time_ns()}")
    arn = arn["executionArn"]
    description = sfn.describe_execution(executionArn=arn)
    while description["status"] == "RUNNING":
        time.sleep(POLL_SECONDS)
        description = sfn.describe_execution(executionArn=arn)
    seconds = time.perf_counter() - started
    requests, calls, states = instruments.take()
    if description["status"] != "SUCCEEDED":
        error, cause = root_cause(arn, description)
        raise RuntimeError(f"{name}: execution {description['status']}: {error}: {cause[:2000]}")
    return Phase(
        name=name,
        seconds=seconds,
        output=json.loads(description.get("output") or "{}"),
        requests=requests,
        calls=calls,
        states=states,
        parent_states=_parent_states_entered(sfn, arn),
        invocations=Counter(invocations.calls) - calls_before,
        errors=Counter(invocations.errors) - errors_before,
    )


def _parent_states_entered(sfn: Any, execution_arn: str) -> int:
    """StateEntered events in the parent execution's history (moto records no history for map children)."""
    entered = 0
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        entered += sum(1 for event in page["events"] if str(event["type"]).endswith("StateEntered"))
    return entered


# --- cost model ----------------------------------------------------------------------------------------------


def lambda_memory(template: dict[str, Any], deployed: DeployedStack) -> dict[str, int]:
    """Configured MemorySize (MB) of each deployed function, by function name, from the synthesized template."""
    memory = {}
    for logical, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            memory[deployed.physical[logical]] = int(resource["Properties"].get("MemorySize", 128))
    return memory


def gb_seconds(phase: Phase, memory: dict[str, int]) -> tuple[float, float]:
    """(measured, net) GB-s: handler wall time x memory; net leaves out time the emulated AWS spent serving."""
    served = [span for service, span in phase.requests.spans if service in HANDLER_SERVICES]
    gross = net = 0.0
    for call in phase.calls:
        gb = memory.get(call.function, 128) / 1024
        gross += call.seconds * gb
        net += max(0.0, call.seconds - overlap(call.span, served)) * gb
    return gross, net


@dataclass
class Cost:
    """Dollar cost of one run by component (for the run as measured, or scaled to 1 TB), with its GB-s."""

    gb_seconds: float
    net_gb_seconds: float
    parts: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.parts.values())


@dataclass
class Usage:
    """Billable units of one run: what the cost model multiplies by prices."""

    s3_put_tier: float
    s3_get_tier: float
    invocations: float
    gb_seconds: float
    net_gb_seconds: float
    transitions: float
    kms: float
    events: float

    def cost(self) -> Cost:
        return Cost(
            gb_seconds=self.gb_seconds,
            net_gb_seconds=self.net_gb_seconds,
            parts={
                "S3 requests": self.s3_put_tier * S3_PUT_TIER_REQUEST + self.s3_get_tier * S3_GET_TIER_REQUEST,
                "Lambda requests": self.invocations * LAMBDA_PER_REQUEST,
                "Lambda compute": self.gb_seconds * LAMBDA_ARM_GB_SECOND,
                "Step Functions": self.transitions * SFN_PER_TRANSITION,
                "KMS": self.kms * KMS_PER_REQUEST,
                "EventBridge": self.events * EVENTS_PER_EVENT,
            },
        )


def measured_usage(phase: Phase, memory: dict[str, int]) -> Usage:
    tiers: Counter[str] = Counter()
    for operation, n in phase.requests.by_service("s3").items():
        tiers[s3_tier(operation)] += n
    gross, net = gb_seconds(phase, memory)
    return Usage(
        s3_put_tier=tiers["put"],
        s3_get_tier=tiers["get"],
        invocations=sum(phase.invocations.values()),
        gb_seconds=gross,
        net_gb_seconds=net,
        transitions=phase.transitions,
        kms=phase.requests.total("kms"),
        events=phase.requests.by_service("events").get("PutEvents", 0),
    )


def linear_usage(usage: Usage, factor: float) -> Usage:
    """Every unit scaled by ``factor`` (the brief's per-GiB ratios applied to 1 TB)."""
    return Usage(**{name: value * factor for name, value in vars(usage).items()})


def batches_at(phase: Phase, factor: float) -> float:
    """Worker batches the Prepare step would stage for ``factor`` times this run's work (its batching rule)."""
    objects, nbytes = phase.read.objects * factor, phase.read.bytes * factor
    return max(1.0, math.ceil(objects / BATCH_MAX_OBJECTS), math.ceil(nbytes / BATCH_MAX_BYTES))


def batched_usage(phase: Phase, usage: Usage, factor: float) -> Usage:
    """Scale to 1 TB knowing the workflow's shape: one execution (Prepare, Commit, events) whatever the size, one
    worker invocation and child execution per batch, one KMS Decrypt per invocation; S3 requests and GB-s, which
    follow objects and bytes, scale linearly."""
    workers = sum(n for f, n in phase.invocations.items() if "Worker" in f)
    worker_states = sum(n for s, n in phase.states.items() if "Worker" in s)
    batches = batches_at(phase, factor)
    per_batch = batches / max(1, workers)
    invocations = usage.invocations - workers + workers * per_batch
    return Usage(
        s3_put_tier=usage.s3_put_tier * factor,
        s3_get_tier=usage.s3_get_tier * factor,
        invocations=invocations,
        gb_seconds=usage.gb_seconds * factor,
        net_gb_seconds=usage.net_gb_seconds * factor,
        transitions=usage.transitions - worker_states + worker_states * per_batch,
        kms=usage.kms / max(1.0, usage.invocations) * invocations,
        events=usage.events,
    )


# --- report --------------------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a plain aligned table: first column left, the others right."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        log("  " + "  ".join(cells))


def per_gib(count: float, nbytes: int) -> str:
    return f"{count / (nbytes / GIB):,.0f}" if nbytes > 0 else "-"


def report_throughput(phases: Sequence[Phase]) -> None:
    log("\nThroughput (wall time StartExecution -> SUCCEEDED; MB/s of all source bytes in the bucket)")
    rows = [
        [
            p.name,
            str(p.source.objects),
            str(p.read.objects),
            f"{p.source.bytes / MIB:.1f}",
            f"{p.read.bytes / MIB:.1f}",
            f"{p.seconds:.1f}",
            f"{p.source.objects / p.seconds:.1f}",
            f"{p.source.bytes / MB / p.seconds:.2f}",
            f"{p.read.bytes / MB / p.seconds:.2f}",
            f"{p.stored_bytes / MIB:.2f}",
        ]
        for p in phases
    ]
    headers = ["run", "objects", "read", "MiB", "MiB read", "s", "objects/s", "MB/s", "read MB/s", "vault +MiB"]
    table(headers, rows)


def report_s3(phase: Phase, roles: dict[str, str]) -> None:
    groups: Counter[str] = Counter()
    for operation, n in phase.requests.by_service("s3").items():
        groups[s3_group(operation)] += n
    groups["total"] = sum(groups.values())
    log(
        f"\nS3 requests, {phase.name} ({phase.source.objects} objects, {phase.source.bytes / MIB:.1f} MiB source, "
        f"{phase.stored_bytes / MIB:.2f} MiB added to the vault)"
    )
    rows = [
        [
            g,
            str(groups[g]),
            per_gib(groups[g], phase.source.bytes),
            per_gib(groups[g], phase.stored_bytes),
            f"{groups[g] / max(1, phase.source.objects):.2f}",
        ]
        for g in (*S3_GROUPS, "total")
        if groups[g] or g in ("GET", "PUT", "LIST", "HEAD", "DELETE", "MULTIPART", "total")
    ]
    table(["operation", "count", "/GiB source", "/GiB stored", "/object"], rows)
    by_bucket: dict[str, Counter[str]] = {}
    for (bucket, operation), n in phase.requests.s3_buckets.items():
        by_bucket.setdefault(roles.get(bucket, bucket), Counter())[operation] += n
    for role, ops in sorted(by_bucket.items()):
        log(f"    {role}: " + ", ".join(f"{op} {n}" for op, n in ops.most_common()))
    vault = [
        (prefix or "(bucket)", op, n)
        for (b, prefix, op), n in phase.requests.s3_prefixes.items()
        if roles.get(b) == "vault"
    ]
    log("    vault by prefix: " + ", ".join(f"{p} {op} {n}" for p, op, n in sorted(vault)))


def report_other(phase: Phase, memory: dict[str, int]) -> None:
    gib = phase.source.bytes / GIB
    kms = phase.requests.by_service("kms")
    n_invocations = sum(phase.invocations.values())
    errors = f"; errors {dict(phase.errors)}" if phase.errors else ""
    log(
        f"  Lambda invocations {n_invocations} ({n_invocations / gib:,.1f}/GiB): "
        + ", ".join(f"{_short(f)} {n}" for f, n in phase.invocations.items())
        + errors
    )
    seconds: dict[str, float] = {}
    for call in phase.calls:
        seconds[call.function] = seconds.get(call.function, 0.0) + call.seconds
    log(
        "  handler seconds (MemorySize MB): "
        + ", ".join(f"{_short(f)} {s:.2f} ({memory.get(f, 128)})" for f, s in seconds.items())
    )
    log(
        f"  Step Functions transitions {phase.transitions} ({phase.transitions / gib:,.1f}/GiB): "
        + ", ".join(f"{s} {n}" for s, n in phase.states.items())
        + f" [parent history: {phase.parent_states} StateEntered]"
    )
    log(
        f"  KMS requests {sum(kms.values())} ({sum(kms.values()) / gib:,.1f}/GiB): "
        + ", ".join(f"{op} {n}" for op, n in kms.most_common())
    )
    others = {f"{s}:{o}": n for (s, o), n in phase.requests.counts.items() if s not in ("s3", "kms")}
    log("  other requests: " + ", ".join(f"{k} {n}" for k, n in sorted(others.items())))


def _short(function: str) -> str:
    """The readable part of a deployed function name (``FunctionsBackupWorker1A2B3C4D`` -> ``BackupWorker``)."""
    name = function.removeprefix("Functions").removeprefix("Vaultline")
    return name[:-8] if len(name) > 8 and name[-8:].isalnum() and name[-8:].upper() == name[-8:] else name


@dataclass
class BenchRun:
    """Everything one bench run measured."""

    sample: dict[str, SourceObject]
    changed: dict[str, SourceObject]
    change: Change
    phases: list[Phase]
    vault_first: VaultUsage
    vault_last: VaultUsage
    memory: dict[str, int]
    roles: dict[str, str]
    bad: list[str]

    @property
    def full_bytes(self) -> int:
        return sum(len(o.body) for o in self.sample.values())


def report_costs(run: BenchRun) -> None:
    log("\nEstimated AWS cost per TB of source (1 TB = 1024 GiB): linear per-GiB scaling / batch-aware model")
    scaled: dict[str, tuple[Cost, Cost]] = {}
    for p in run.phases:
        usage, factor = measured_usage(p, run.memory), TB / p.source.bytes
        scaled[p.name] = (linear_usage(usage, factor).cost(), batched_usage(p, usage, factor).cost())
    components = list(next(iter(scaled.values()))[0].parts)
    rows = []
    for component in [*components, "total"]:
        row = [component]
        for linear, batched in scaled.values():
            a, b = (
                (linear.total, batched.total)
                if component == "total"
                else (linear.parts[component], batched.parts[component])
            )
            row.append(f"${a:,.2f} / ${b:,.2f}")
        rows.append(row)
    rows.append(
        ["Lambda GB-s (net of emulator)"]
        + [f"{c.gb_seconds:,.0f} ({c.net_gb_seconds:,.0f})" for c, _ in scaled.values()]
    )
    rows.append(["worker batches at 1 TB"] + [f"{batches_at(p, TB / p.source.bytes):,.0f}" for p in run.phases])
    table(["component", *(p.name for p in run.phases)], rows)
    report_storage(run, scaled.get("restore", (None, None))[1])


def report_storage(run: BenchRun, restore: Cost | None) -> None:
    ratio = run.vault_first.current.bytes / run.full_bytes
    incremental = next(p for p in run.phases if p.name == "incremental")
    growth = incremental.stored_bytes / incremental.source.bytes
    log("\nStorage per TB of source per month")
    table(
        ["", "$/TB-month", "basis"],
        [
            [
                "Vaultline vault (S3 Standard)",
                f"${ratio * 1024 * S3_STANDARD_GB_MONTH:,.2f}",
                f"vault/source {ratio:.3f} after the first backup x ${S3_STANDARD_GB_MONTH}/GB-month",
            ],
            [
                "  + per incremental run kept",
                f"${growth * 1024 * S3_STANDARD_GB_MONTH:,.3f}",
                f"vault grows {growth * 100:.2f}% of source per {run_change_share(run):.0%}-change run",
            ],
            [
                "AWS Backup for S3 (warm)",
                f"${1024 * AWS_BACKUP_S3_WARM_GB_MONTH:,.2f}",
                f"${AWS_BACKUP_S3_WARM_GB_MONTH}/GB-month of source bytes (no compression, no dedup)",
            ],
            [
                "AWS Backup DynamoDB (warm)",
                f"${1024 * AWS_BACKUP_DDB_WARM_GB_MONTH:,.2f}",
                f"${AWS_BACKUP_DDB_WARM_GB_MONTH}/GB-month",
            ],
            [
                "AWS Backup DynamoDB (cold)",
                f"${1024 * AWS_BACKUP_DDB_COLD_GB_MONTH:,.2f}",
                f"${AWS_BACKUP_DDB_COLD_GB_MONTH}/GB-month",
            ],
        ],
    )
    if restore:
        log(
            f"  restore per TB: Vaultline ${restore.total:,.2f} (batch-aware model; requests + compute) vs AWS "
            f"Backup DynamoDB restore ${1024 * AWS_BACKUP_DDB_RESTORE_GB:,.2f} (${AWS_BACKUP_DDB_RESTORE_GB}/GB)"
        )
    last = run.vault_last
    log(
        f"  vault after both backups: {last.current.objects} current objects, {last.current.bytes / MIB:.2f} MiB ("
        + ", ".join(f"{k} {v / MIB:.2f}" for k, v in last.by_prefix.most_common())
        + f" MiB); noncurrent versions {last.noncurrent.objects} ({last.noncurrent.bytes / MIB:.3f} MiB, kept "
        f"30 days by the noncurrent-version rule); {last.delete_markers} delete markers; "
        f"staging left behind: {len(last.staging_keys)} objects, {last.staging.bytes} B "
        f"{last.staging_keys[:3]}"
    )


def run_change_share(run: BenchRun) -> float:
    c = run.change
    return (c.appended + c.edited + c.added + len(c.deleted)) / len(run.sample)


def report_assumptions(run: BenchRun) -> None:
    full = run.full_bytes
    text = sum(len(o.body) for o in run.sample.values() if o.kind in corpus.TEXT_KINDS)
    c = run.change
    log("\nAssumptions")
    log(
        f"  sample (seeded): {len(run.sample)} objects, {full / MIB:.1f} MiB, {text / full:.0%} of bytes text/JSON "
        f"(the rest gzip archives and random binary), mean object {full / len(run.sample) / 1024:.0f} KiB; "
        f"source/vault after the first backup {full / run.vault_first.current.bytes:.2f}x (zstd-3 + dedup)"
    )
    log(
        f"  incremental run: {c.appended} objects appended to, {c.edited} edited, {c.added} added, "
        f"{len(c.deleted)} deleted before it"
    )
    log(
        "  linear model: the run's per-GiB ratios applied to 1 TB, so per-run fixed work (one execution, Prepare, "
        "Commit, events) is multiplied too; batch-aware model: that work counted once, workers and child "
        f"executions per batch ({BATCH_MAX_OBJECTS} objects or {BATCH_MAX_BYTES // GIB} GiB), S3 and GB-s linear "
        "(same object-size mix)"
    )
    log(
        "  Lambda GB-s: handler wall time in this process x the template's MemorySize, including the time moto took "
        "to serve the handler's requests (a stand-in for S3 latency); the net figure leaves it out; no cold starts"
    )
    log(
        "  not modelled: data transfer (same region: free), CloudWatch Logs and metrics, X-Ray, access-log storage, "
        "KMS calls S3 makes for SSE-KMS (bucket keys on), storage of noncurrent staging versions"
    )


# --- main ----------------------------------------------------------------------------------------------------


def deploy(template: dict[str, Any]) -> tuple[DeployedStack, StackInfo]:
    deployed = deploy_template(template)
    register_stack(STACK, deployed.outputs)
    return deployed, find_stack(STACK)


def backup_payload(stack: StackInfo) -> dict[str, Any]:
    return next(p for p in stack.plans["bench"] if p["source"]["url"] == f"s3://{SOURCE_BUCKET}")


def _read_stats(phase: Phase, objects: dict[str, SourceObject]) -> None:
    phase.source = Tally(len(objects), sum(len(o.body) for o in objects.values()))
    stats = phase.output.get("committed", {}).get("stats")
    phase.read = Tally(int(stats["objects_read"]), int(stats["bytes_read"])) if stats else phase.source


def run_workflows(args: argparse.Namespace, instruments: Instruments, info: StackInfo) -> BenchRun:
    """Fill the source, back it up, change ~5%, back up again, restore the second recovery point and verify."""
    sample = make_sample(args.objects, int(args.mib * MIB), args.seed)
    bench_client("s3").create_bucket(Bucket=SOURCE_BUCKET)
    upload(sample, SOURCE_BUCKET)
    log(
        f"filled s3://{SOURCE_BUCKET}: {len(sample)} objects, {sum(len(o.body) for o in sample.values()) / MIB:.1f} MiB"
    )
    payload = backup_payload(info)

    first = run_phase("first backup", instruments, info.backup_state_machine, payload)
    _read_stats(first, sample)
    vault_first = vault_usage(info.vault_bucket)
    first.stored_bytes = vault_first.current.bytes
    log(f"first backup: {first.seconds:.1f} s")

    changed, change = mutate(sample, args.change, args.seed)
    apply_change(sample, changed, change)
    second = run_phase("incremental", instruments, info.backup_state_machine, payload)
    _read_stats(second, changed)
    vault_last = vault_usage(info.vault_bucket)
    second.stored_bytes = vault_last.current.bytes - vault_first.current.bytes
    log(f"incremental backup: {second.seconds:.1f} s")

    bench_client("s3").create_bucket(Bucket=RESTORE_BUCKET)
    restore_input = {
        "recovery_point": second.output["committed"]["recovery_point"],
        "target": f"s3://{RESTORE_BUCKET}",
        "worker_concurrency": payload.get("worker_concurrency", 10),
    }
    restore = run_phase("restore", instruments, info.restore_state_machine, restore_input)
    _read_stats(restore, changed)
    log(f"restore: {restore.seconds:.1f} s")
    roles = {SOURCE_BUCKET: "source", RESTORE_BUCKET: "restore target", info.vault_bucket: "vault"}
    return BenchRun(
        sample,
        changed,
        change,
        [first, second, restore],
        vault_first,
        vault_last,
        {},
        roles,
        verify(changed, RESTORE_BUCKET),
    )


def run_all(args: argparse.Namespace, template: dict[str, Any]) -> BenchRun:
    with EmbeddedAws(PROJECT / "functions", quiet=True), ExitStack() as stack:
        instruments = Instruments.installed(stack)
        deployed, info = deploy(template)
        run = run_workflows(args, instruments, info)
        run.memory = lambda_memory(template, deployed)
    return run


def report(run: BenchRun) -> None:
    report_throughput(run.phases)
    for phase in run.phases:
        report_s3(phase, run.roles)
        report_other(phase, run.memory)
    report_costs(run)
    report_assumptions(run)
    verdict = "all objects equal" if not run.bad else f"{len(run.bad)} differ: {run.bad[:5]}"
    log(f"\nrestore verified against the changed source ({len(run.changed)} objects): {verdict}")


def synthesized_template(started: float) -> dict[str, Any]:
    """The stack's template, synthesized for a bench run started at ``started`` (monotonic), timed in the log."""
    template = synthesize(PROJECT, STACK, WORK / "cdk.out", context={"plansFile": str(PLANS_FILE)})
    log(f"synthesized in {time.monotonic() - started:.0f} s; running on the embedded AWS ...")
    return template


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    clock = time.monotonic()
    log(f"Vaultline workflow bench: {args.objects} objects, {args.mib:g} MiB; synthesizing the CDK app ...")
    run = run_all(args, synthesized_template(clock))
    report(run)
    log(f"workflow bench finished in {time.monotonic() - clock:.0f} s")
    return 0 if not run.bad else 1


if __name__ == "__main__":
    sys.exit(main())
