"""Faults as AWS produces them, injected into the embedded AWS at rates a test sets.

A WSGI middleware in front of moto's server answers a share of the requests with the error AWS would send when it
is overloaded: S3 ``503 SlowDown`` and ``500 InternalError``, DynamoDB ``ProvisionedThroughputExceededException``
and ``ThrottlingException``, KMS ``ThrottlingException``, and Lambda ``429 TooManyRequestsException`` on Invoke.
Each answer has the status, headers and body shape of its service's protocol, so the SDK's retry logic and the
state machines' retriers see exactly what they would see on AWS.

Who gets faults: only callers acting as one of the template's roles (Lambda functions and state machines), never
the harness (the deploy, the tests' setup and checks, the user's CLI), whose failures would only test the test. And
only where AWS itself would surface the error to our code: a state machine's own S3 reads (ItemReader, ResultWriter)
are retried inside Step Functions on AWS, so they get none; its Lambda invokes do, as Lambda throttles them.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/")
_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/[^/]+/invocations$")


@dataclass(frozen=True)
class Caller:
    """What the middleware knows of a request before moto sees it."""

    service: str  # the SigV4 signing name: s3, dynamodb, kms, lambda, ...
    operation: str  # X-Amz-Target's operation, or "METHOD /path" for REST services
    role_arn: str | None  # the template role the caller acts as; None for the harness
    state_machine: bool  # the role is one Step Functions assumes


@dataclass(frozen=True)
class Fault:
    """One kind of error AWS answers with, and which requests it can hit."""

    name: str
    service: str
    status: int
    protocol: str  # "rest-xml" (S3), "json" (DynamoDB, KMS), "rest-json" (Lambda)
    code: str
    message: str
    for_state_machines: bool = False  # state machines' own calls get it too (Lambda throttling does)
    operations: tuple[str, ...] = ()  # empty: any operation of the service

    def applies_to(self, caller: Caller) -> bool:
        """Whether a request from ``caller`` may get this fault."""
        if caller.role_arn is None or caller.service != self.service:
            return False
        if caller.state_machine and not self.for_state_machines:
            return False
        return not self.operations or caller.operation in self.operations

    def response(self) -> tuple[str, list[tuple[str, str]], bytes]:
        """Status line, headers and body, in the service's protocol."""
        reason = {400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Slow Down"}
        status = f"{self.status} {reason.get(self.status, 'Error')}"
        if self.protocol == "rest-xml":
            body = (
                f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{self.code}</Code>"
                f"<Message>{self.message}</Message><RequestId>vaultline-fault</RequestId></Error>"
            ).encode()
            return status, [("Content-Type", "application/xml")], body
        if self.protocol == "json":
            body = json.dumps({"__type": self.code, "message": self.message}).encode()
            return status, [("Content-Type", "application/x-amz-json-1.0")], body
        body = json.dumps({"Type": "User", "message": self.message}).encode()
        return status, [("Content-Type", "application/json"), ("x-amzn-ErrorType", self.code)], body


S3_SLOW_DOWN = Fault("s3-slowdown", "s3", 503, "rest-xml", "SlowDown", "Please reduce your request rate.")
S3_INTERNAL_ERROR = Fault(
    "s3-internal-error", "s3", 500, "rest-xml", "InternalError", "We encountered an internal error. Please try again."
)
DYNAMODB_THROUGHPUT = Fault(
    "dynamodb-throughput",
    "dynamodb",
    400,
    "json",
    "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "The level of configured provisioned throughput for the table was exceeded.",
)
DYNAMODB_THROTTLING = Fault(
    "dynamodb-throttling",
    "dynamodb",
    400,
    "json",
    "com.amazon.coral.availability#ThrottlingException",
    "Rate of requests exceeds the allowed throughput.",
)
KMS_THROTTLING = Fault("kms-throttling", "kms", 400, "json", "ThrottlingException", "Rate exceeded")
LAMBDA_TOO_MANY_REQUESTS = Fault(
    "lambda-too-many-requests",
    "lambda",
    429,
    "rest-json",
    "TooManyRequestsException",
    "Rate Exceeded.",
    for_state_machines=True,
    operations=("POST invoke",),
)
ALL_FAULTS = (
    S3_SLOW_DOWN,
    S3_INTERNAL_ERROR,
    DYNAMODB_THROUGHPUT,
    DYNAMODB_THROTTLING,
    KMS_THROTTLING,
    LAMBDA_TOO_MANY_REQUESTS,
)
FAULTS_BY_NAME = {fault.name: fault for fault in ALL_FAULTS}

RoleLookup = Callable[[str], tuple[str | None, bool]]
"""Access key id -> (role ARN or None for the harness, whether Step Functions assumes that role)."""


@dataclass
class FaultInjector:
    """Decides, per request, whether to answer with a fault; counts what it injected (the run's retries)."""

    lookup_role: RoleLookup
    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    _random: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def set_rates(self, rates: Mapping[str, float], seed: int = 0) -> None:
        """Inject each named fault (see ``FAULTS_BY_NAME``) at its rate from now on; reset the counts."""
        unknown = sorted(set(rates) - set(FAULTS_BY_NAME))
        if unknown:
            raise ValueError(f"unknown fault {', '.join(unknown)}; known: {', '.join(sorted(FAULTS_BY_NAME))}")
        bad = {name: rate for name, rate in rates.items() if not 0.0 <= rate < 1.0}
        if bad:
            raise ValueError(f"fault rates must be in [0, 1): {bad}")
        with self._lock:
            self.rates = dict(rates)
            self._random = random.Random(seed)
            self.injected.clear()

    def clear(self) -> None:
        """Inject nothing from now on (the counts stay readable)."""
        with self._lock:
            self.rates = {}

    def choose(self, caller: Caller) -> Fault | None:
        """The fault this request gets, if any (at most one, each kind rolled at its own rate)."""
        with self._lock:
            for name, rate in self.rates.items():
                fault = FAULTS_BY_NAME[name]
                if fault.applies_to(caller) and self._random.random() < rate:
                    self.injected[name] += 1
                    return fault
        return None

    def middleware(self, app: WsgiApp) -> WsgiApp:
        """Wrap moto's WSGI application."""

        def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if self.rates:
                caller = self._caller(environ)
                fault = self.choose(caller) if caller is not None else None
                if fault is not None:
                    _drain(environ)
                    status, headers, body = fault.response()
                    start_response(status, [*headers, ("Content-Length", str(len(body)))])
                    return [body]
            return app(environ, start_response)

        return serve

    def _caller(self, environ: dict[str, Any]) -> Caller | None:
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if match is None:
            return None
        access_key, _region, service = match.groups()
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        if target:
            operation = target.rpartition(".")[2]
        elif service == "lambda" and method == "POST" and _INVOKE_PATH.match(path):
            operation = "POST invoke"
        else:
            operation = f"{method} {path}"
        role_arn, state_machine = self.lookup_role(access_key)
        return Caller(service, operation, role_arn, state_machine)


def _drain(environ: dict[str, Any]) -> None:
    """Read the request body we will not pass on, so the connection stays usable for the client's retry."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ.get("wsgi.input")
    if stream is not None and length:
        stream.read(length)


def moto_role_lookup(access_key_id: str) -> tuple[str | None, bool]:
    """Resolve an access key through moto's STS and IAM: the assumed role, and whether Step Functions assumes it."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for account_id, partitions in list(sts_backends.items()):
        for backend in list(partitions.values()):
            assumed = backend.get_assumed_role_from_access_key(access_key_id)
            if assumed is None:
                continue
            role_arn = assumed.role_arn
            try:
                role = iam_backends[account_id]["aws"].get_role_by_arn(role_arn)
                trust = json.dumps(role.assume_role_policy_document or "")
            except Exception:  # a role outside the template (another account's): treat as a plain caller
                trust = ""
            return role_arn, "states.amazonaws.com" in trust
    return None, False
