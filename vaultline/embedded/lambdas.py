"""Route moto's Lambda invocations to our real handlers, loaded by their handler strings as Lambda does.

This is the one place moto is patched: ``LambdaSimpleBackend.invoke`` (the docker-free backend) looks up the
deployed function, imports ``module.attribute`` from the code directory with the function's environment, and
calls it with a context object. An exception becomes a Lambda function error whose ``errorType`` is the
exception's class name, which is what Step Functions matches in Retry and Catch.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.awslambda_simple.models import LambdaSimpleBackend

_lock = threading.Lock()
_code_dirs: list[Path] = []
_original_invoke = LambdaSimpleBackend.invoke

Interceptor = Callable[[str, dict[str, Any]], None]
"""Called before each invocation with (function name, event); raising fails the invocation (fault injection)."""


@dataclass
class InvocationLog:
    """Counts kept for benchmarks and tests."""

    calls: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    interceptors: list[Interceptor] = field(default_factory=list)

    def total(self) -> int:
        return sum(self.calls.values())


invocations = InvocationLog()


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object our handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _load(handler: str, code_dir: Path) -> Callable[[Any, Any], Any]:
    module_name, _, attribute = handler.rpartition(".")
    with _lock:
        if str(code_dir) not in sys.path:
            sys.path.insert(0, str(code_dir))
        module = importlib.import_module(module_name)
    function: Callable[[Any, Any], Any] = getattr(module, attribute)
    return function


def _invoke(
    self: LambdaSimpleBackend, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
) -> bytes:
    fn = self.get_function(function_name, qualifier)
    name = fn.function_name
    event = json.loads(body) if body else {}
    context = LambdaContext(
        function_name=name,
        invoked_function_arn=fn.function_arn,
        memory_limit_in_mb=int(fn.memory_size or 128),
        timeout_seconds=int(fn.timeout or 3),
    )
    with _lock:
        invocations.calls[name] = invocations.calls.get(name, 0) + 1
        # One process hosts every function; their environments are the stack's shared settings, so applying
        # each function's variables before its call is what Lambda's per-function environment amounts to here.
        os.environ.update({str(k): str(v) for k, v in (fn.environment_vars or {}).items()})
    try:
        for interceptor in list(invocations.interceptors):
            interceptor(name, event)
        result = _load(str(fn.handler), _code_dirs[0])(event, context)
        return json.dumps(result).encode()
    except Exception as exc:
        with _lock:
            invocations.errors[name] = invocations.errors.get(name, 0) + 1
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(
            {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-5:],
            }
        ).encode()


def route_lambda_to_handlers(code_dir: Path) -> None:
    """Make every invocation of a deployed function run its handler from ``code_dir`` in this process."""
    _code_dirs[:] = [code_dir]
    LambdaSimpleBackend.invoke = _invoke  # type: ignore[method-assign]


def restore_moto_lambda() -> None:
    LambdaSimpleBackend.invoke = _original_invoke  # type: ignore[method-assign]
