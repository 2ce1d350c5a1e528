"""Run moto's Lambda invocations as Lambda runs them: each in a sandbox of the function's runtime (sandbox.py).

This is the one place moto is patched: ``LambdaSimpleBackend.invoke`` (the docker-free backend) looks up the
deployed function, takes a warm sandbox of exactly its configuration from the pool (or starts one: a cold start),
and sends it the event. An exception in the handler comes back as a Lambda function error whose ``errorType`` is the
exception's class name, which is what Step Functions matches in Retry and Catch; the invoke response carries
``x-amz-function-error`` as Lambda's does.

Sandboxes are reused as Lambda reuses execution environments: one invocation at a time each, as many as there are
concurrent invocations of a function, kept warm until the configuration changes (a re-deploy), they fail (timeout,
out of memory, a killed process), or the embedded AWS closes.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.awslambda_simple.models import LambdaSimpleBackend

from vaultline_dev.embedded import emf
from vaultline_dev.embedded.iam import assume_as_service
from vaultline_dev.embedded.sandbox import (
    RUNTIMES,
    Outcome,
    RuntimeNotInstalled,
    Sandbox,
    SandboxConfig,
    runtime_python,
)

_original_invoke = LambdaSimpleBackend.invoke

Interceptor = Callable[[str, dict[str, Any]], None]
"""Called before each invocation with (function name, event); raising fails the invocation, named by the
exception's class (fault injection), except :class:`KillSandbox`, which kills the invocation's sandbox mid-way."""
Observer = Callable[[str, float, float], None]
"""Called after each invocation with (function name, start, end) in ``time.perf_counter`` seconds."""


class KillSandbox(Exception):
    """Raised by an interceptor: run the invocation, but kill its sandbox ``after_seconds`` in unless it is done.

    Fault injection of "a worker killed mid-batch": the invocation fails with ``Runtime.ExitError``.
    """

    def __init__(self, after_seconds: float = 0.0) -> None:
        super().__init__(f"kill the sandbox {after_seconds} s into the invocation")
        self.after_seconds = after_seconds


@dataclass
class InvocationLog:
    """Counts kept for benchmarks and tests, and the hooks they install."""

    calls: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    interceptors: list[Interceptor] = field(default_factory=list)
    observers: list[Observer] = field(default_factory=list)

    def total(self) -> int:
        return sum(self.calls.values())


invocations = InvocationLog()
_counts = threading.Lock()


@dataclass
class LambdaContext:
    """The host's record of one invocation; the sandbox's context object starts its clock from this one's."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class SandboxPool:
    """Warm sandboxes by configuration, and the ones busy with an invocation."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._lock = threading.Lock()
        self._idle: dict[SandboxConfig, list[Sandbox]] = {}
        self._busy: set[Sandbox] = set()
        self.started: dict[str, int] = {}
        """Sandboxes started (cold starts) by function name."""

    def acquire(self, config: SandboxConfig) -> Sandbox:
        """A warm sandbox of ``config``, or a new one; sandboxes of the function's older configurations shut down."""
        stale: list[Sandbox] = []
        with self._lock:
            for other in [c for c in self._idle if c.function_name == config.function_name and c != config]:
                stale += self._idle.pop(other)
            warm = self._idle.get(config, [])
            sandbox = warm.pop() if warm else None
        for old in stale:
            old.close()
        if sandbox is None:
            # Lambda acts as the execution role only if its trust policy admits lambda.amazonaws.com.
            credentials = assume_as_service(config.role_arn, "lambda.amazonaws.com", config.function_name)
            sandbox = Sandbox(config, credentials, self.log_dir)
            with self._lock:
                self.started[config.function_name] = self.started.get(config.function_name, 0) + 1
        with self._lock:
            self._busy.add(sandbox)
        return sandbox

    def release(self, sandbox: Sandbox, reusable: bool) -> None:
        with self._lock:
            self._busy.discard(sandbox)
            keep = reusable and sandbox.alive
            if keep:
                self._idle.setdefault(sandbox.config, []).append(sandbox)
        if not keep:
            sandbox.close()

    def busy(self, function_name: str) -> list[Sandbox]:
        """Sandboxes running an invocation of functions whose name contains ``function_name``."""
        with self._lock:
            return [s for s in self._busy if function_name in s.config.function_name]

    def shutdown(self) -> None:
        """Close every idle sandbox and kill every busy one (their invocations fail with Runtime.ExitError)."""
        with self._lock:
            sandboxes = [s for warm in self._idle.values() for s in warm] + list(self._busy)
            self._idle.clear()
        for sandbox in sandboxes:
            sandbox.close()


@dataclass
class LambdaRuntime:
    """What the embedded Lambda runs functions with: code, layer, the runtime's SDK, and the sandbox pool."""

    code_dir: Path
    layer_dir: Path
    sdk_dir: Callable[[str], Path]
    """The runtime's SDK directory for a CPython minor version (``"3.12"``)."""
    endpoint: str
    region: str
    pool: SandboxPool
    code_dirs: dict[str, Path] = field(default_factory=dict)
    """Code directories of functions that are not the stack's (a test's own probe functions), by function name."""

    def config(self, fn: Any) -> SandboxConfig:
        """The sandbox configuration of moto's function ``fn``, read from what the deploy gave it."""
        name, runtime = str(fn.function_name), str(fn.run_time)
        runtime_python(runtime)  # fails with one line naming the runtime and what to install
        return SandboxConfig(
            function_name=name,
            function_arn=str(fn.function_arn),
            runtime=runtime,
            handler=str(fn.handler),
            memory_mb=int(fn.memory_size or 128),
            ephemeral_mb=int(fn.ephemeral_storage or 512),
            timeout_seconds=int(fn.timeout or 3),
            role_arn=str(fn.role),
            variables=tuple(sorted((str(k), str(v)) for k, v in (fn.environment_vars or {}).items())),
            tracing_active=(fn.tracing_config or {}).get("Mode") == "Active",
            code_dir=self.code_dirs.get(name, self.code_dir),
            layer_dir=self.layer_dir,
            sdk_dir=self.sdk_dir(RUNTIMES[runtime]),
            endpoint=self.endpoint,
            region=self.region,
        )

    def logs(self, function_name: str) -> str:
        """Everything the function's sandboxes logged, stream after stream (CloudWatch Logs' log group, here)."""
        streams = sorted((self.pool.log_dir / function_name).glob("*.log"), key=lambda p: p.stat().st_mtime)
        return "".join(p.read_text(errors="replace") for p in streams)

    def kill_running(self, function_name: str) -> int:
        """Kill the sandboxes now running an invocation of a function whose name contains ``function_name``.

        Each killed invocation fails as Lambda reports a runtime that died (``Runtime.ExitError``); returns how many.
        """
        running = self.pool.busy(function_name)
        for sandbox in running:
            sandbox.kill()
        return len(running)


_runtime: LambdaRuntime | None = None


def current_runtime() -> LambdaRuntime:
    """The runtime that the open embedded AWS runs functions with."""
    if _runtime is None:
        raise RuntimeError("the embedded Lambda is not running: open an EmbeddedAws first")
    return _runtime


def _function_error(kind: str, message: str, reusable: bool = True) -> Outcome:
    error = {"errorType": kind, "errorMessage": message, "stackTrace": []}
    return Outcome(json.dumps(error).encode(), kind, reusable)


def _dispatch(runtime: LambdaRuntime, fn: Any, event: Any) -> Outcome:
    try:
        config = runtime.config(fn)
    except RuntimeNotInstalled as exc:
        return _function_error("Runtime.NotInstalled", str(exc))
    context = LambdaContext(config.function_name, config.function_arn, config.memory_mb, config.timeout_seconds)
    kill_after: float | None = None
    try:
        for interceptor in list(invocations.interceptors):
            interceptor(config.function_name, event)
    except KillSandbox as kill:
        kill_after = kill.after_seconds
    except Exception as exc:
        return _function_error(type(exc).__name__, str(exc))
    sandbox = runtime.pool.acquire(config)
    killer = threading.Timer(kill_after, sandbox.kill) if kill_after is not None else None
    outcome = sandbox.init_error or Outcome(b"", None, False)
    logged = sandbox.log_path.stat().st_size if sandbox.log_path.exists() else 0
    try:
        if killer is not None:
            killer.start()
        outcome = sandbox.invoke(event, context.aws_request_id, context.get_remaining_time_in_millis())
    finally:
        if killer is not None:
            killer.cancel()
        # CloudWatch Logs turns the invocation's EMF lines (Powertools Metrics) into metrics.
        with sandbox.log_path.open("rb") as log:
            log.seek(logged)
            emf.ingest(log.read().decode(errors="replace"), _account_of(config.function_arn), runtime.region)
        runtime.pool.release(sandbox, outcome.reusable)
    return outcome


def _account_of(function_arn: str) -> str:
    return function_arn.split(":")[4]


def _invoke(
    self: LambdaSimpleBackend, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
) -> bytes:
    fn = self.get_function(function_name, qualifier)
    name = str(fn.function_name)
    event = json.loads(body) if body else {}
    with _counts:
        invocations.calls[name] = invocations.calls.get(name, 0) + 1
    started = time.perf_counter()
    try:
        outcome = _dispatch(current_runtime(), fn, event)
    finally:
        ended = time.perf_counter()
        for observer in list(invocations.observers):
            observer(name, started, ended)
    if outcome.error_type is not None:
        with _counts:
            invocations.errors[name] = invocations.errors.get(name, 0) + 1
        response_headers["x-amz-function-error"] = "Unhandled"
    return outcome.payload


def route_lambda_to_sandboxes(runtime: LambdaRuntime) -> None:
    """Make every invocation of a deployed function run in a sandbox of ``runtime``."""
    global _runtime
    _runtime = runtime
    LambdaSimpleBackend.invoke = _invoke  # type: ignore[method-assign]


def restore_moto_lambda() -> None:
    """Shut every sandbox down and give moto its own invoke back."""
    global _runtime
    if _runtime is not None:
        _runtime.pool.shutdown()
    _runtime = None
    LambdaSimpleBackend.invoke = _original_invoke  # type: ignore[method-assign]
