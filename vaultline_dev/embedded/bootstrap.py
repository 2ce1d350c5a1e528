"""The runtime inside one sandbox of the embedded Lambda: what Lambda's Python bootstrap does, standard library only.

Run by the sandbox as ``python -I -S bootstrap.py REQUEST_FD RESPONSE_FD PATH...``: it puts the PATHs (code, layer,
the runtime's SDK) first on ``sys.path``, imports the handler named by ``_HANDLER`` (the init phase), then answers
one invocation per request line on REQUEST_FD with one response line on RESPONSE_FD, until REQUEST_FD closes. The
two descriptors are the private channel: the function's own stdout and stderr go to its log stream and can print
anything without corrupting a response.

Lines are JSON. Request: ``{"event", "request_id", "remaining_ms", "invoked_function_arn", "trace_id"}``.
Response: ``{"result": <JSON text>}`` or ``{"error": {"errorType", "errorMessage", "stackTrace"}}``; the first line
written, before any request, is ``{"ready": true}`` or ``{"init_error": {...}}``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

Handler = Callable[[Any, Any], Any]


class LambdaContext:
    """Lambda's context object, with the attributes and the one method the Python runtime gives it."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.aws_request_id: str = request["request_id"]
        self.invoked_function_arn: str = request["invoked_function_arn"]
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        # A string, as the Python runtime gives it (it reads the environment variable).
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = int(time.time() * 1000) + int(request["remaining_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(kind: str, message: str, stack: list[str] | None = None) -> dict[str, Any]:
    return {"errorType": kind, "errorMessage": message, "stackTrace": stack or []}


def _exception(exc: BaseException) -> dict[str, Any]:
    return _error(type(exc).__name__, str(exc), traceback.format_tb(exc.__traceback__))


def _init(handler_name: str) -> tuple[Handler | None, dict[str, Any] | None]:
    module_name, _, attribute = handler_name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return None, _error("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}")
    except SyntaxError as exc:
        return None, _error("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}")
    except Exception as exc:
        return None, _exception(exc)
    handler = getattr(module, attribute, None)
    if not callable(handler):
        return None, _error("Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_name}'")
    return handler, None


def _log_error(error: dict[str, Any]) -> None:
    # Lambda's Python runtime logs an unhandled error as "[ERROR] Type: message" with the traceback.
    print(f"[ERROR] {error['errorType']}: {error['errorMessage']}", file=sys.stderr)
    for line in error["stackTrace"]:
        print(line, end="", file=sys.stderr)
    sys.stderr.flush()


def _invoke(handler: Handler, request: dict[str, Any]) -> dict[str, Any]:
    os.environ["_X_AMZN_TRACE_ID"] = request["trace_id"]
    print(f"START RequestId: {request['request_id']} Version: {os.environ['AWS_LAMBDA_FUNCTION_VERSION']}", flush=True)
    try:
        result = handler(request["event"], LambdaContext(request))
    except Exception as exc:
        error = _exception(exc)
        _log_error(error)
        return {"error": error}
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        print(f"END RequestId: {request['request_id']}", flush=True)
    try:
        return {"result": json.dumps(result)}
    except (TypeError, ValueError) as exc:
        return {"error": _error("Runtime.MarshalError", f"Unable to marshal response: {exc}")}


def _send(channel: IO[str], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def main(argv: list[str]) -> int:
    """Serve invocations until the host closes the request channel."""
    requests = os.fdopen(int(argv[1]), "r", encoding="utf-8")
    responses = os.fdopen(int(argv[2]), "w", encoding="utf-8")
    sys.path[:0] = argv[3:]
    handler, init_error = _init(os.environ["_HANDLER"])
    if handler is None:
        assert init_error is not None
        _log_error(init_error)
        _send(responses, {"init_error": init_error})
        return 1
    _send(responses, {"ready": True})
    for line in requests:
        _send(responses, _invoke(handler, json.loads(line)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
