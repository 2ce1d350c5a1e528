"""Deterministic benchmark corpus: DynamoDB-export JSON lines, CSV, logs, gzip archives and random binary.

Everything derives from one seed: the file plan (names, kinds, sizes) from ``random.Random(seed)``, each file's
content from its own seed, so files can be generated in parallel processes and still be identical run to run.
Lines are built in blocks from vocabularies (``Random.choices`` with ``k=``, ``randbytes().hex()``), never byte by
byte, which keeps generation near 100 MB/s per core.
"""

from __future__ import annotations

import gzip
import math
import os
import random
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
BLOCK_LINES = 2048

# Share of the corpus bytes per kind: ~45% DynamoDB JSON, ~35% CSV and logs, ~20% already compressed or random.
KIND_SHARES: dict[str, float] = {
    "dynamodb": 0.45,
    "csv": 0.12,
    "access": 0.12,
    "applog": 0.11,
    "gzip": 0.10,
    "binary": 0.10,
}
TEXT_KINDS = ("dynamodb", "csv", "access", "applog")

FIRST = ["james", "mary", "li", "fatima", "olga", "raj", "chen", "ana", "lucas", "emma", "noah", "yuki", "omar"]
LAST = ["smith", "garcia", "wang", "kumar", "mueller", "rossi", "silva", "kim", "novak", "dubois", "sato", "haddad"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "shop.example.io"]
CITIES = ["Paris", "Lyon", "Berlin", "Madrid", "Austin", "Seattle", "Tokyo", "Osaka", "Lagos", "Lima", "Pune", "Oslo"]
COUNTRIES = ["FR", "DE", "ES", "US", "JP", "NG", "PE", "IN", "NO", "GB", "BR", "CA"]
STATUSES = ["PENDING", "PAID", "SHIPPED", "DELIVERED", "CANCELLED", "REFUNDED"]
ENTITIES = ["user", "order", "cart", "invoice", "device", "session"]
TAGS = ["vip", "new", "promo", "b2b", "mobile", "web", "eu", "us", "apac", "flagged", "gift", "bulk"]
CURRENCIES = ["EUR", "USD", "JPY", "GBP", "BRL", "INR"]
METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD"]
PATHS = ["/api/v1/orders", "/api/v1/users", "/api/v2/cart", "/static/app.js", "/static/main.css", "/health", "/login"]
CODES = ["200", "200", "200", "200", "201", "204", "301", "304", "400", "403", "404", "500", "503"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Go-http-client/2.0",
]
LEVELS = ["INFO", "INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR"]
SERVICES = ["orders", "payments", "inventory", "auth", "search", "notifier"]
MESSAGES = [
    "request completed",
    "cache miss, loading from table",
    "payment authorized",
    "retrying downstream call after throttling",
    "user session refreshed",
    "published event to bus",
    "slow query detected",
    "validation failed for field quantity",
]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
# Pre-formatted values: choosing among strings is several times faster than formatting numbers per line.
CLOCK = [f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}" for t in range(86400)]
MILLIS = [f"{ms:03d}" for ms in range(1000)]
DAYS = [f"{d:02d}" for d in range(1, 29)]
NUMBERS = [str(i) for i in range(100_000)]
PRICES = [f"{c // 100}.{c % 100:02d}" for c in range(99, 100_000, 7)]
BIG_PRICES = [f"{c // 100}.{c % 100:02d}" for c in range(100, 500_000, 13)]
OCTETS = NUMBERS[:256]


@dataclass(frozen=True)
class FileSpec:
    """One corpus file: where it goes, what it holds, how big it is, and the seed of its content."""

    rel: str
    kind: str
    size: int
    seed: int


@dataclass
class Day2Summary:
    """What the day-2 mutation did to the corpus."""

    appended: int = 0
    edited: int = 0
    added: int = 0
    deleted: int = 0
    new_bytes: int = 0
    files_before: int = 0


# -- line generators: each returns one block of text lines ----------------------------------------------------


def _stamp(rng: random.Random, n: int) -> list[str]:
    """ISO-8601 timestamps on one day of May 2024, ascending within the block."""
    day = rng.choice(DAYS)
    clock = sorted(rng.choices(CLOCK, k=n))
    millis = rng.choices(MILLIS, k=n)
    return [f"2024-05-{day}T{clock[i]}.{millis[i]}Z" for i in range(n)]


def dynamodb_lines(rng: random.Random, n: int) -> list[str]:
    """DynamoDB export items (``{"Item": {...}}`` in type-preserving DynamoDB JSON), one per line."""
    ids = rng.randbytes(6 * n).hex()
    sks = rng.randbytes(4 * n).hex()
    ent = rng.choices(ENTITIES, k=n)
    first = rng.choices(FIRST, k=n)
    last = rng.choices(LAST, k=n)
    dom = rng.choices(DOMAINS, k=n)
    city = rng.choices(CITIES, k=n)
    country = rng.choices(COUNTRIES, k=n)
    status = rng.choices(STATUSES, k=n)
    qty = rng.choices(NUMBERS[1:50], k=n)
    amount = rng.choices(BIG_PRICES, k=n)
    ver = rng.choices(NUMBERS[1:40], k=n)
    tag_a = rng.choices(TAGS, k=n)
    tag_b = rng.choices(TAGS, k=n)
    active = rng.choices(("true", "false"), k=n)
    zips = rng.choices(NUMBERS[10000:], k=n)
    stamps = _stamp(rng, n)
    return [
        f'{{"Item":{{"pk":{{"S":"{ent[i]}#{ids[12 * i : 12 * i + 12]}"}},'
        f'"sk":{{"S":"v{ver[i]}#{sks[8 * i : 8 * i + 8]}"}},'
        f'"n":{{"N":"{qty[i]}"}},"amount":{{"N":"{amount[i]}"}},'
        f'"status":{{"S":"{status[i]}"}},"email":{{"S":"{first[i]}.{last[i]}@{dom[i]}"}},'
        f'"address":{{"M":{{"city":{{"S":"{city[i]}"}},"country":{{"S":"{country[i]}"}},'
        f'"zip":{{"S":"{zips[i]}"}}}}}},'
        f'"tags":{{"SS":["{tag_a[i]}","{tag_b[i]}"]}},"active":{{"BOOL":{active[i]}}},'
        f'"updated_at":{{"S":"{stamps[i]}"}}}}}}\n'
        for i in range(n)
    ]


def csv_lines(rng: random.Random, n: int) -> list[str]:
    """Order rows of a warehouse CSV export."""
    ids = rng.randbytes(8 * n).hex()
    cust = rng.choices(NUMBERS, k=n)
    sku = rng.choices(NUMBERS[1000:60000], k=n)
    qty = rng.choices(NUMBERS[1:20], k=n)
    price = rng.choices(PRICES, k=n)
    cur = rng.choices(CURRENCIES, k=n)
    country = rng.choices(COUNTRIES, k=n)
    status = rng.choices(STATUSES, k=n)
    stamps = _stamp(rng, n)
    return [
        f"{ids[16 * i : 16 * i + 16]},{cust[i]},SKU-{sku[i]},{qty[i]},{price[i]},"
        f"{cur[i]},{country[i]},{stamps[i]},{status[i]}\n"
        for i in range(n)
    ]


def access_lines(rng: random.Random, n: int) -> list[str]:
    """Web server access log lines (combined log format plus request time)."""
    ip = rng.choices(OCTETS, k=3 * n)
    meth = rng.choices(METHODS, k=n)
    path = rng.choices(PATHS, k=n)
    rid = rng.choices(NUMBERS, k=n)
    code = rng.choices(CODES, k=n)
    size = rng.choices(NUMBERS[:80000], k=n)
    agent = rng.choices(AGENTS, k=n)
    lat = rng.choices(MILLIS, k=n)
    clock = sorted(rng.choices(CLOCK, k=n))
    when = f"{rng.choice(DAYS)}/{rng.choice(MONTHS)}/2024"
    return [
        f"10.{ip[3 * i]}.{ip[3 * i + 1]}.{ip[3 * i + 2]} - - [{when}:{clock[i]} +0000] "
        f'"{meth[i]} {path[i]}/{rid[i]} HTTP/1.1" {code[i]} {size[i]} "-" "{agent[i]}" 0.{lat[i]}\n'
        for i in range(n)
    ]


def applog_lines(rng: random.Random, n: int) -> list[str]:
    """Structured application log lines with request ids and key=value fields."""
    rids = rng.randbytes(8 * n).hex()
    lvl = rng.choices(LEVELS, k=n)
    svc = rng.choices(SERVICES, k=n)
    msg = rng.choices(MESSAGES, k=n)
    lat = rng.choices(NUMBERS[1:5000], k=n)
    user = rng.choices(NUMBERS, k=n)
    stamps = _stamp(rng, n)
    return [
        f"{stamps[i]} {lvl[i]:<5} [{svc[i]}] [req={rids[16 * i : 16 * i + 16]}] {msg[i]} "
        f"user_id={user[i]} latency_ms={lat[i]}\n"
        for i in range(n)
    ]


def token_log_lines(rng: random.Random, n: int) -> list[str]:
    """Application log lines carrying an opaque token: the text inside the gzip archives (compresses ~2-3x)."""
    tokens = rng.randbytes(24 * n).hex()
    return [f"{line[:-1]} token={tokens[48 * i : 48 * i + 48]}\n" for i, line in enumerate(applog_lines(rng, n))]


LineMaker = Callable[[random.Random, int], list[str]]
LINE_MAKERS: dict[str, LineMaker] = {
    "dynamodb": dynamodb_lines,
    "csv": csv_lines,
    "access": access_lines,
    "applog": applog_lines,
    "gzip": token_log_lines,
}
CSV_HEADER = "order_id,customer_id,sku,quantity,unit_price,currency,country,created_at,status\n"


def text_bytes(kind: str, rng: random.Random, size: int) -> bytes:
    """About ``size`` bytes of whole lines of ``kind`` (the last line may be cut at exactly ``size``)."""
    maker = LINE_MAKERS[kind]
    parts: list[bytes] = []
    total = 0
    while total < size:
        block = "".join(maker(rng, BLOCK_LINES)).encode()
        parts.append(block)
        total += len(block)
    return b"".join(parts)[:size]


def file_bytes(spec: FileSpec) -> bytes:
    """The full content of one corpus file."""
    rng = random.Random(spec.seed)
    if spec.kind == "binary":
        return rng.randbytes(spec.size)
    if spec.kind == "gzip":
        # The plan's size is the compressed size: generate ~2.4x as much text (the archive ratio) and trim lines.
        text = text_bytes("gzip", rng, int(spec.size * 2.4))
        return gzip.compress(text, compresslevel=6, mtime=0)
    body = text_bytes(spec.kind, rng, spec.size)
    return CSV_HEADER.encode() + body if spec.kind == "csv" else body


# -- planning -------------------------------------------------------------------------------------------------


def _file_name(kind: str, rng: random.Random, index: int) -> str:
    tag = rng.randbytes(4).hex()
    if kind == "dynamodb":
        table = rng.choice(["orders", "users", "sessions", "inventory"])
        return f"dynamodb/{table}/AWSDynamoDB/01715{index:08d}-{tag}/data/{rng.randbytes(8).hex()}.json"
    if kind == "csv":
        return f"warehouse/orders/dt=2024-05-{index % 28 + 1:02d}/part-{index:05d}-{tag}.csv"
    if kind == "access":
        return f"logs/access/2024/05/{index % 28 + 1:02d}/nginx-{index:05d}.log"
    if kind == "applog":
        return f"logs/app/{rng.choice(SERVICES)}/{index:05d}-{tag}.log"
    if kind == "gzip":
        return f"archive/logs/{index:05d}-{tag}.log.gz"
    return f"blobs/{tag[:2]}/{index:05d}-{tag}.bin"


def _draw_size(rng: random.Random, low: int, high: int) -> int:
    """Log-uniform size in [low, high]: many small files, most bytes in the big ones."""
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def plan_corpus(total: int, seed: int) -> list[FileSpec]:
    """File specs whose sizes add up to about ``total`` bytes, in the kind shares of :data:`KIND_SHARES`."""
    rng = random.Random(seed)
    high = max(64 * KIB, min(48 * MIB, total // 16))
    specs: list[FileSpec] = []
    for kind, share in KIND_SHARES.items():
        budget = int(total * share)
        while budget > 0:
            size = min(budget, _draw_size(rng, 4 * KIB, high))
            budget -= size
            specs.append(FileSpec(_file_name(kind, rng, len(specs)), kind, size, rng.getrandbits(63)))
    return specs


# -- writing --------------------------------------------------------------------------------------------------


def _write_one(root: str, spec: FileSpec) -> int:
    path = Path(root, spec.rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = file_bytes(spec)
    path.write_bytes(data)
    return len(data)


def generate(root: Path, specs: Sequence[FileSpec], workers: int = 2) -> int:
    """Write every file of ``specs`` under a fresh ``root``; return the bytes written."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    # Biggest first, so the two workers finish together.
    ordered = sorted(specs, key=lambda s: -s.size)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(_write_one, [str(root)] * len(ordered), ordered, chunksize=1))


# -- day 2 ----------------------------------------------------------------------------------------------------


def _append(path: Path, kind: str, rng: random.Random) -> int:
    """Append new lines (a log or export that grew); return the new bytes."""
    size = path.stat().st_size
    extra = text_bytes(kind, rng, max(4 * KIB, min(512 * KIB, size // 20)))
    extra = extra[: extra.rfind(b"\n") + 1] or extra
    with path.open("ab") as handle:
        handle.write(extra)
    return len(extra)


def _edit_middle(path: Path, kind: str, rng: random.Random) -> int:
    """Overwrite a few KiB in the middle of the file with fresh content of the same kind; same size."""
    size = path.stat().st_size
    length = min(size // 4, rng.randrange(2 * KIB, 16 * KIB))
    offset = size // 2 - length // 2
    fresh = text_bytes(kind, rng, length) if kind in TEXT_KINDS else rng.randbytes(length)
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(fresh)
    return len(fresh)


def make_day2(root: Path, specs: Sequence[FileSpec], seed: int, changed_share: float = 0.05) -> Day2Summary:
    """Rewrite the corpus under ``root`` into its day-2 state, in place (same paths, so backups are incremental).

    About ``changed_share`` of the files change: appends to text files, edits in the middle of any file, a few
    new files and a few deleted ones.
    """
    rng = random.Random(seed ^ 0xDA72)
    summary = Day2Summary(files_before=len(specs))
    count = max(4, round(len(specs) * changed_share))
    chosen = rng.sample(list(specs), count)
    n_delete = max(1, count // 8)
    n_add = max(1, count // 8)
    n_edit = max(1, (count - n_delete) // 3)
    for spec in chosen[:n_delete]:
        Path(root, spec.rel).unlink()
        summary.deleted += 1
    for spec in chosen[n_delete : n_delete + n_edit]:
        summary.new_bytes += _edit_middle(Path(root, spec.rel), spec.kind, rng)
        summary.edited += 1
    for spec in chosen[n_delete + n_edit :]:
        kind = spec.kind if spec.kind in TEXT_KINDS else "applog"
        if spec.kind in TEXT_KINDS:
            summary.new_bytes += _append(Path(root, spec.rel), kind, rng)
            summary.appended += 1
        else:
            summary.new_bytes += _edit_middle(Path(root, spec.rel), spec.kind, rng)
            summary.edited += 1
    for i in range(n_add):
        kind = rng.choice(TEXT_KINDS)
        spec = FileSpec(_file_name(kind, rng, 90000 + i), kind, rng.randrange(64 * KIB, 768 * KIB), rng.getrandbits(63))
        summary.new_bytes += _write_one(str(root), spec)
        summary.added += 1
    return summary


def tree_size(root: Path) -> tuple[int, int]:
    """(files, bytes) under ``root``."""
    files = total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            files += 1
            total += os.path.getsize(os.path.join(dirpath, name))
    return files, total
