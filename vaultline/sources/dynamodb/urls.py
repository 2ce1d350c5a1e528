"""``dynamodb://TABLE[?region=R&role=ARN]`` URLs, apart from the table client behind them: the CLI asks of every
source and target URL whether it names a table, and a directory or S3 run must not import botocore to learn it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

from vaultline.errors import UsageError

SCHEME = "dynamodb://"


@dataclass(frozen=True)
class TableRef:
    """A table named by ``dynamodb://TABLE[?region=R&role=ARN]``."""

    name: str
    region: str | None = None
    role: str | None = None

    @property
    def url(self) -> str:
        query = {k: v for k, v in (("region", self.region), ("role", self.role)) if v}
        return SCHEME + self.name + (f"?{urlencode(query)}" if query else "")


def parse_table_url(url: str) -> TableRef:
    """Parse ``dynamodb://TABLE[?region=R&role=ARN]``; anything else is a usage error naming the URL."""
    if not url.startswith(SCHEME):
        raise UsageError(f"{url!r} is not a dynamodb://TABLE URL")
    parts = urlsplit(url)
    name = parts.netloc
    query = parse_qs(parts.query)
    unknown = set(query) - {"region", "role"}
    if not name or parts.path not in ("", "/") or unknown:
        raise UsageError(f"{url!r}: expected dynamodb://TABLE[?region=R&role=ARN]")
    region, role = query.get("region", [None])[0], query.get("role", [None])[0]
    return TableRef(name, region, role)


def is_table_url(url: str) -> bool:
    return url.startswith(SCHEME)
