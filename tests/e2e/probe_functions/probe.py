"""Handlers that report on the sandbox they run in, for tests/e2e/test_lambda_runtime.py (standard library only).

Deployed as the code of probe functions next to the stack; never part of it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from typing import Any


def describe(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Where this runs: interpreter, sys.path, which modules it can import, its environment and context."""
    print("probe output on stdout: not a response {", flush=True)
    print("probe output on stderr", file=sys.stderr, flush=True)
    return {
        "version": list(sys.version_info[:2]),
        "executable": sys.executable,
        "path": sys.path,
        "pid": os.getpid(),
        "importable": {name: importlib.util.find_spec(name) is not None for name in event.get("modules", [])},
        "environment": dict(os.environ),
        "context": {
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "invoked_function_arn": context.invoked_function_arn,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
    }


def caller(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Who this function is to the embedded AWS (boto3 as the runtime provides it, with the role's credentials)."""
    import boto3

    return {"arn": boto3.client("sts").get_caller_identity()["Arn"], "boto3": boto3.__version__}


def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Take ``seconds`` to answer."""
    time.sleep(float(event["seconds"]))
    return {"slept": event["seconds"]}


def allocate(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Hold ``mb`` MiB of touched memory for a moment."""
    block = b"x" * (int(event["mb"]) << 20)
    time.sleep(0.2)
    return {"allocated": len(block) >> 20}


def spill(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Write ``mb`` MiB to a temporary file (in /tmp, as Lambda's tempfile finds it) and hold it for a moment."""
    with tempfile.NamedTemporaryFile() as file:
        for _ in range(int(event["mb"])):
            file.write(b"x" * (1 << 20))
        file.flush()
        time.sleep(0.2)
        return {"written": int(event["mb"]), "in": os.path.dirname(file.name)}


class ProbeFailure(Exception):
    """Raised on request, to see how an unhandled error comes back."""


def fail(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise ProbeFailure(event.get("message", "probe failed on request"))
