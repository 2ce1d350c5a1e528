"""Read/write rate limits and throttling retries, with an injectable clock and sleep so tests never wait."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from botocore.exceptions import ClientError

from vaultline.aws import error_code
from vaultline.errors import VaultlineRetryable

T = TypeVar("T")

THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def is_throttle(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and error_code(exc) in THROTTLE_CODES


@dataclass
class Backoff:
    """Full-jitter exponential backoff for throttled requests. The same request is retried as it was (same
    ExclusiveStartKey, same batch), so nothing is lost or read twice."""

    base: float = 0.05
    cap: float = 10.0
    attempts: int = 12
    sleep: Callable[[float], None] = time.sleep
    retries: int = 0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2**attempt))

    def call(self, request: Callable[[], T], what: str) -> T:
        """Run ``request``, retrying throttling errors; give up with VaultlineRetryable (the state machine retries)."""
        for attempt in range(self.attempts):
            try:
                return request()
            except ClientError as exc:
                if not is_throttle(exc) or attempt == self.attempts - 1:
                    if is_throttle(exc):
                        raise VaultlineRetryable(f"{what}: still throttled after {self.attempts} attempts") from None
                    raise
                self.retries += 1
                self.sleep(self.delay(attempt))
        raise AssertionError("unreachable")


@dataclass
class RateLimiter:
    """A token bucket of capacity units per second (RCU for scans, WCU for writes), fed with what DynamoDB reports
    as consumed (ReturnConsumedCapacity=TOTAL): the limit holds whatever the item sizes. ``rate=None`` = no limit."""

    rate: float | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    tokens: float = field(default=0.0, init=False)
    last: float | None = field(default=None, init=False)
    consumed: float = field(default=0.0, init=False)
    slept: float = field(default=0.0, init=False)

    def spend(self, units: float) -> None:
        """Account for ``units`` just consumed; sleep if that went over the rate."""
        self.consumed += units
        if not self.rate:
            return
        now = self.clock()
        if self.last is None:
            self.tokens, self.last = self.rate, now  # one second of burst, as DynamoDB itself allows
        # A clock behind ``last`` (we slept past it in the accounting) adds nothing rather than taking tokens.
        self.tokens = min(self.rate, self.tokens + max(0.0, now - self.last) * self.rate) - units
        self.last = now
        if self.tokens < 0:
            wait = -self.tokens / self.rate
            self.sleep(wait)
            self.slept += wait
            self.tokens, self.last = 0.0, now + wait
