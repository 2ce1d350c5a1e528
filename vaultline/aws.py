"""boto3 clients configured once: standard credential chain and AWS_ENDPOINT_URL, adaptive retries."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10}, max_pool_connections=32)
_lock = threading.Lock()
_clients: dict[tuple[str, str | None], Any] = {}


def client(service: str, region: str | None = None) -> Any:
    """A shared, thread-safe boto3 client for ``service`` (boto3 clients are thread-safe, sessions are not)."""
    key = (service, region)
    with _lock:
        if key not in _clients:
            _clients[key] = boto3.session.Session().client(service, region_name=region, config=_CONFIG)  # type: ignore[call-overload]
        return _clients[key]


def reset_clients() -> None:
    """Forget cached clients (tests that switch endpoints or mocks call this)."""
    with _lock:
        _clients.clear()
