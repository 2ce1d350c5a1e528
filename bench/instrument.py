"""In-process instrumentation of the embedded AWS for the workflow bench; nothing here touches vaultline/.

Three counters, each installed by patching one hook for the life of a ``with`` block:

* :class:`RequestCounter` wraps moto's WSGI entry point (``DomainDispatcherApplication.__call__``) and counts every
  HTTP request by service (from the SigV4 credential scope of the Authorization header) and operation (S3: from
  method, path and query; JSON protocols: from ``X-Amz-Target``). Requests whose User-Agent carries
  :data:`BENCH_AGENT` are the bench's own set-up and polling and are left out.
* :class:`HandlerTimer` observes every invocation that ``vaultline_dev.embedded.lambdas`` runs in a sandbox and records
  its wall time by function name.
* :class:`StateCounter` counts every state the Step Functions interpreter enters, in the parent execution and in
  the Distributed Map's child executions alike (moto keeps no history for the children).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.stepfunctions.parser.asl.component.state.state import CommonStateField

import vaultline_dev.embedded.lambdas as embedded_lambdas

BENCH_AGENT = "vaultline-bench"
"""User-Agent marker of the bench's own clients; their requests are not the product's and are not counted."""

LOCAL_HOSTS = ("127.0.0.1", "localhost")

# S3 operations grouped as the bench reports them.
S3_GROUPS = ("GET", "HEAD", "LIST", "PUT", "DELETE", "MULTIPART", "OTHER")
_MULTIPART = {
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListParts",
}
# S3 pricing tiers: DELETE and CANCEL requests are free; PUT, COPY, POST and LIST share the higher price; GET,
# HEAD and every other request the lower one (https://aws.amazon.com/s3/pricing/, "Requests & data retrievals").
_FREE = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload", "DeleteObjectTagging", "DeleteBucket"}


def s3_group(operation: str) -> str:
    """The report column of an S3 operation."""
    if operation in _MULTIPART:
        return "MULTIPART"
    if operation.startswith("List"):
        return "LIST"
    if operation.startswith("Head"):
        return "HEAD"
    if operation.startswith("Delete"):
        return "DELETE"
    if operation.startswith("Get"):
        return "GET"
    if operation.startswith(("Put", "Copy", "Create")):
        return "PUT"
    return "OTHER"


def s3_tier(operation: str) -> str:
    """``"put"`` (PUT/COPY/POST/LIST price), ``"get"`` (GET and all other requests) or ``"free"``."""
    if operation in _FREE:
        return "free"
    if operation in ("ListParts",) or operation.startswith(("List", "Put", "Copy", "Create", "Complete", "Upload")):
        return "put"
    return "get"


def _split_bucket_key(environ: dict[str, Any]) -> tuple[str, str]:
    """(bucket, key) for path-style (``host/bucket/key``) and virtual-hosted (``bucket.host/key``) requests."""
    host = str(environ.get("HTTP_HOST", "")).split(":")[0]
    path = str(environ.get("PATH_INFO", "")).lstrip("/")
    label, _, rest = host.partition(".")
    virtual = host not in LOCAL_HOSTS and rest and (rest in LOCAL_HOSTS or rest.startswith("s3"))
    if virtual:
        return label, path
    bucket, _, key = path.partition("/")
    return bucket, key


def s3_operation(environ: dict[str, Any]) -> str:
    """The S3 API operation of one request, from its method, whether it names a key, and its query string."""
    method = str(environ.get("REQUEST_METHOD", "GET"))
    query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
    _, key = _split_bucket_key(environ)
    copy = "HTTP_X_AMZ_COPY_SOURCE" in environ
    if key:
        return _object_operation(method, query, copy)
    return _bucket_operation(method, query)


def _object_operation(method: str, query: dict[str, list[str]], copy: bool) -> str:
    sub = next((name for name in ("tagging", "retention", "legal-hold", "acl", "attributes") if name in query), "")
    suffix = _camel(sub)
    if method == "HEAD":
        return "HeadObject"
    if method == "GET":
        return "ListParts" if "uploadId" in query else f"GetObject{suffix}"
    if method == "PUT":
        if "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return f"PutObject{suffix}" if sub else ("CopyObject" if copy else "PutObject")
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        return "CompleteMultipartUpload" if "uploadId" in query else "PostObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else f"DeleteObject{suffix}"
    return f"{method}Object"


def _camel(name: str) -> str:
    """``object-lock`` -> ``ObjectLock``."""
    return "".join(part.capitalize() for part in name.split("-"))


def _bucket_operation(method: str, query: dict[str, list[str]]) -> str:
    if method == "HEAD":
        return "HeadBucket"
    if method == "GET":
        if "list-type" in query:
            return "ListObjectsV2"
        if "versions" in query:
            return "ListObjectVersions"
        if "uploads" in query:
            return "ListMultipartUploads"
        sub = _camel(next(iter(query), ""))
        return f"GetBucket{sub}" if sub else "ListObjects"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "PUT":
        sub = _camel(next(iter(query), ""))
        return f"PutBucket{sub}" if sub else "CreateBucket"
    if method == "DELETE":
        return "DeleteBucket"
    return f"{method}Bucket"


def service_of(environ: dict[str, Any]) -> str:
    """The signing service of a SigV4 request (``Credential=AKID/date/region/service/aws4_request``)."""
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    try:
        scope = auth.split(",")[0].split()[1]
        return scope.split("/")[3].lower()
    except IndexError:
        return "unsigned"


def operation_of(service: str, environ: dict[str, Any]) -> str:
    """The API operation of a request to ``service``."""
    if service == "s3":
        return s3_operation(environ)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    path = str(environ.get("PATH_INFO", ""))
    if service == "lambda" and path.endswith("/invocations"):
        return "Invoke"
    return f"{environ.get('REQUEST_METHOD', '?')} {path.split('/')[1] if path.count('/') else path}"


@dataclass(frozen=True)
class Interval:
    """When one request or handler call ran (``time.perf_counter`` seconds)."""

    start: float
    end: float


@dataclass
class RequestLog:
    """Requests counted since the log was last cleared."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    s3_buckets: Counter[tuple[str, str]] = field(default_factory=Counter)
    s3_prefixes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    spans: list[tuple[str, Interval]] = field(default_factory=list)
    excluded: int = 0

    def by_service(self, service: str) -> Counter[str]:
        """Operation counts of one service."""
        return Counter({op: n for (svc, op), n in self.counts.items() if svc == service})

    def total(self, service: str) -> int:
        return sum(self.by_service(service).values())


class RequestCounter:
    """Counts the product's requests to the embedded AWS while installed."""

    def __init__(self) -> None:
        self.log = RequestLog()
        self._lock = threading.Lock()
        self._original: Callable[..., Any] | None = None

    def clear(self) -> None:
        with self._lock:
            self.log = RequestLog()

    def take(self) -> RequestLog:
        """Return what was counted since the last clear and start a new log."""
        with self._lock:
            log, self.log = self.log, RequestLog()
        return log

    def _record(self, environ: dict[str, Any], span: Interval) -> None:
        if BENCH_AGENT in str(environ.get("HTTP_USER_AGENT", "")):
            with self._lock:
                self.log.excluded += 1
            return
        service = service_of(environ)
        operation = operation_of(service, environ)
        bucket, key = _split_bucket_key(environ) if service == "s3" else ("", "")
        with self._lock:
            self.log.counts[(service, operation)] += 1
            if bucket:
                self.log.s3_buckets[(bucket, operation)] += 1
                self.log.s3_prefixes[(bucket, key.split("/", 1)[0] if "/" in key else key, operation)] += 1
            self.log.spans.append((service, span))

    @contextmanager
    def installed(self) -> Iterator[RequestCounter]:
        original = DomainDispatcherApplication.__call__
        counter = self

        def counting_call(app: DomainDispatcherApplication, environ: dict[str, Any], start_response: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(app, environ, start_response)
            finally:
                counter._record(environ, Interval(started, time.perf_counter()))

        DomainDispatcherApplication.__call__ = counting_call  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            DomainDispatcherApplication.__call__ = original  # type: ignore[method-assign]


@dataclass
class HandlerCall:
    """One handler invocation: function name and when it ran."""

    function: str
    span: Interval

    @property
    def seconds(self) -> float:
        return self.span.end - self.span.start


class HandlerTimer:
    """Times every Lambda handler call routed by the embedded AWS, by function name."""

    def __init__(self) -> None:
        self.calls: list[HandlerCall] = []
        self._lock = threading.Lock()

    def take(self) -> list[HandlerCall]:
        with self._lock:
            calls, self.calls = self.calls, []
        return calls

    def _record(self, function: str, started: float, ended: float) -> None:
        with self._lock:
            self.calls.append(HandlerCall(function, Interval(started, ended)))

    @contextmanager
    def installed(self) -> Iterator[HandlerTimer]:
        # Each invocation's wall time in the host, sandbox round trip included (a cold start's init too).
        embedded_lambdas.invocations.observers.append(self._record)
        try:
            yield self
        finally:
            embedded_lambdas.invocations.observers.remove(self._record)


class StateCounter:
    """Counts states entered by the Step Functions interpreter, by state name (parent and child executions)."""

    def __init__(self) -> None:
        self.entered: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self) -> Counter[str]:
        with self._lock:
            entered, self.entered = self.entered, Counter()
        return entered

    @contextmanager
    def installed(self) -> Iterator[StateCounter]:
        original = CommonStateField._eval_body
        counter = self

        def eval_body(state: CommonStateField, env: Any) -> None:
            with counter._lock:
                counter.entered[str(state.name)] += 1
            original(state, env)

        CommonStateField._eval_body = eval_body  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            CommonStateField._eval_body = original  # type: ignore[method-assign]


def overlap(span: Interval, others: Iterable[Interval]) -> float:
    """Seconds of ``others`` that fall inside ``span`` (they may overlap each other; capped at the span)."""
    inside = sum(max(0.0, min(span.end, o.end) - max(span.start, o.start)) for o in others)
    return min(inside, span.end - span.start)
