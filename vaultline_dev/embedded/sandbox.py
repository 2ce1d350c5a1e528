"""One execution environment of the embedded Lambda: a process of the function's runtime with only what AWS gives it.

A sandbox is ``python -I -S`` of the CPython that the function's ``Runtime`` names (from pyenv), with an explicit
``sys.path`` of the function's code, its layer's ``python/`` directory and the runtime's SDK, and an environment of
exactly the template's variables, what Lambda itself sets and the execution role's temporary credentials. It runs
:mod:`vaultline_dev.embedded.bootstrap`, talks to it over two private pipes, and writes its stdout and stderr (and
Lambda's START/END/REPORT lines) to a log stream file. It enforces the function's timeout (``Sandbox.Timedout``) and
memory size (peak RSS, ``Runtime.OutOfMemory``); a sandbox that fails either, or whose process dies
(``Runtime.ExitError``), is discarded. Its ``/tmp`` is a directory of its own (``TMPDIR``), kept across its warm
invocations as Lambda keeps ``/tmp``, and held to the function's ``EphemeralStorage``: past it the invocation fails
as a write on a full ``/tmp`` fails on Lambda (``OSError``, "No space left on device") and the sandbox is discarded.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from vaultline_dev.embedded import builds
from vaultline_dev.embedded.identity import RoleCredentials

BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
RUNTIMES = {"python3.12": "3.12", "python3.13": "3.13"}
"""Lambda runtime identifier -> the CPython minor version it runs."""
POLL_SECONDS = 0.02
"""How often a busy sandbox's RSS is read: an allocation outruns the limit by at most this much of its growth."""
FUNCTION_VERSION = "$LATEST"
# Where X-Ray's daemon listens in the sandbox (169.254.79.129 on Lambda): nothing listens here, and UDP loses nothing.
XRAY_DAEMON = ("127.0.0.1", "2000")


class RuntimeNotInstalled(Exception):
    """The CPython a function's runtime needs is not installed on this machine."""


def pyenv_root() -> Path:
    """``$(pyenv root)``: PYENV_ROOT when set, pyenv's default otherwise."""
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def runtime_python(runtime: str) -> Path:
    """The interpreter that runs ``runtime`` (``python3.12`` -> the newest pyenv 3.12.x): the one that compiled the
    layer's bytecode (layers/build.py)."""
    minor = RUNTIMES.get(runtime)
    if minor is None:
        raise RuntimeNotInstalled(f"Lambda runtime {runtime!r} is not one the embedded AWS runs ({sorted(RUNTIMES)})")
    found = builds.runtime_interpreter(minor)
    if found is None:
        raise RuntimeNotInstalled(
            f"Lambda runtime {runtime} needs CPython {minor}, not found under {pyenv_root() / 'versions'}: "
            f"run `pyenv install {minor}`"
        )
    return found


@dataclass(frozen=True)
class SandboxConfig:
    """Everything a sandbox is made from; two invocations share a warm sandbox only if their configs are equal."""

    function_name: str
    function_arn: str
    runtime: str
    handler: str
    memory_mb: int
    timeout_seconds: int
    role_arn: str
    variables: tuple[tuple[str, str], ...]
    """The function's environment variables, exactly as the template sets them."""
    tracing_active: bool
    code_dir: Path
    layer_dir: Path
    """The layer's root: its ``python/`` directory is what Lambda mounts as /opt/python."""
    sdk_dir: Path
    endpoint: str
    region: str
    ephemeral_mb: int = 512
    """The function's ``EphemeralStorage`` (its ``/tmp``), in MB."""

    @property
    def sys_path(self) -> list[str]:
        # Lambda's order: the code, the layer, then the runtime's own packages (a layer may override boto3).
        return [str(self.code_dir), str(self.layer_dir / "python"), str(self.sdk_dir)]


@dataclass(frozen=True)
class Outcome:
    """What one invocation returned: its payload, its function error if any, whether the sandbox may be reused."""

    payload: bytes
    error_type: str | None
    reusable: bool


def environment(
    config: SandboxConfig, credentials: RoleCredentials, log_stream: str, tmp_dir: Path | None = None
) -> dict[str, str]:
    """The template's variables, then what Lambda sets (reserved names win, as Lambda refuses them in templates)."""
    name = config.function_name
    return {
        **dict(config.variables),
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": FUNCTION_VERSION,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_REGION": config.region,
        "AWS_DEFAULT_REGION": config.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.runtime}",
        "LAMBDA_TASK_ROOT": str(config.code_dir),
        "LAMBDA_RUNTIME_DIR": str(config.sdk_dir),
        "_HANDLER": config.handler,
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin/:/bin",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": ":".join(XRAY_DAEMON),
        "_AWS_XRAY_DAEMON_ADDRESS": XRAY_DAEMON[0],
        "_AWS_XRAY_DAEMON_PORT": XRAY_DAEMON[1],
        **credentials.as_environment(),
        # The one adaptation: the SDK talks to the embedded AWS; and the host's ~/.aws (if any) stays out.
        "AWS_ENDPOINT_URL": config.endpoint,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        # And /tmp is the sandbox's own, held to the function's ephemeral storage.
        **({"TMPDIR": str(tmp_dir)} if tmp_dir is not None else {}),
    }


def _lambda_error(kind: str, request_id: str, message: str) -> bytes:
    return json.dumps({"errorType": kind, "errorMessage": f"RequestId: {request_id} Error: {message}"}).encode()


def _trace_id(sampled: bool) -> str:
    root = f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    return f"Root={root};Parent={secrets.token_hex(8)};Sampled={int(sampled)}"


class Sandbox:
    """One warm or cold execution environment; not thread-safe: the pool hands it to one invocation at a time."""

    def __init__(self, config: SandboxConfig, credentials: RoleCredentials, log_dir: Path) -> None:
        self.config = config
        now = datetime.now(UTC)
        self.log_stream = f"{now:%Y/%m/%d}/[{FUNCTION_VERSION}]{uuid.uuid4().hex}"
        self.log_path = log_dir / config.function_name / (self.log_stream.replace("/", "-") + ".log")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.invocations = 0
        self._killed = threading.Event()
        self._closed = threading.Lock()
        self._is_closed = False
        python = runtime_python(config.runtime)
        self.tmp_dir = Path(tempfile.mkdtemp(prefix=f"lambda-tmp-{config.function_name[:40]}-"))
        request_read, self._request_write = os.pipe()
        self._response_read, response_write = os.pipe()
        log = self.log_path.open("ab", buffering=0)
        started = time.monotonic()
        try:
            self.process = subprocess.Popen(
                [python, "-I", "-S", str(BOOTSTRAP), str(request_read), str(response_write), *config.sys_path],
                env=environment(config, credentials, self.log_stream, self.tmp_dir),
                cwd=config.code_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(request_read, response_write),
                start_new_session=True,
            )
        except BaseException:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)  # no process will ever use or close it
            raise
        finally:
            log.close()  # the process has its own descriptor for it
            os.close(request_read)
            os.close(response_write)
        self._requests: IO[str] = os.fdopen(self._request_write, "w", encoding="utf-8")
        self.init_error = self._init(config.timeout_seconds)
        self.init_ms = (time.monotonic() - started) * 1000

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def _init(self, seconds: float) -> Outcome | None:
        # The init phase (importing the handler) may take up to the function's timeout, as Lambda allows on the
        # first invocation when the 10-second init budget runs out.
        message = self._await(time.monotonic() + seconds, "init")
        if isinstance(message, Outcome):
            return message
        if "init_error" in message:
            self.close()
            return Outcome(json.dumps(message["init_error"]).encode(), message["init_error"]["errorType"], False)
        return None

    def invoke(self, event: Any, request_id: str, remaining_ms: int) -> Outcome:
        """Run one invocation; the timeout counts from now, the handler's clock from ``remaining_ms``."""
        if self.init_error is not None:
            return self.init_error
        self.invocations += 1
        started = time.monotonic()
        request = {
            "event": event,
            "request_id": request_id,
            "remaining_ms": remaining_ms,
            "invoked_function_arn": self.config.function_arn,
            "trace_id": _trace_id(self.config.tracing_active),
        }
        try:
            self._requests.write(json.dumps(request) + "\n")
            self._requests.flush()
        except (BrokenPipeError, ValueError):
            return self._exited(request_id)
        message = self._await(started + self.config.timeout_seconds, request_id)
        self._report(request_id, started)
        if isinstance(message, Outcome):
            return message
        if "error" in message:
            return Outcome(json.dumps(message["error"]).encode(), str(message["error"]["errorType"]), True)
        return Outcome(str(message["result"]).encode(), None, True)

    def _await(self, deadline: float, request_id: str) -> dict[str, Any] | Outcome:
        buffer = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                message = f"Task timed out after {self.config.timeout_seconds:.2f} seconds"
                return Outcome(_lambda_error("Sandbox.Timedout", request_id, message), "Sandbox.Timedout", False)
            ready, _, _ = select.select([self._response_read], [], [], min(POLL_SECONDS, left))
            if self._over_memory():
                self.close()
                message = "Runtime exited with error: signal: killed"
                return Outcome(_lambda_error("Runtime.OutOfMemory", request_id, message), "Runtime.OutOfMemory", False)
            if self._over_ephemeral_storage():
                self.close()
                message = f"[Errno 28] No space left on device: /tmp holds {self.config.ephemeral_mb} MB"
                return Outcome(_lambda_error("OSError", request_id, message), "OSError", False)
            if not ready:
                continue
            chunk = os.read(self._response_read, 1 << 16)
            if not chunk:
                return self._exited(request_id)
            buffer += chunk
            if buffer.endswith(b"\n"):
                result: dict[str, Any] = json.loads(buffer)
                return result

    def _exited(self, request_id: str) -> Outcome:
        code = self.process.wait()
        self.close()
        status = f"signal: {signal.Signals(-code).name[3:].lower()}" if code < 0 else f"exit status {code}"
        if self._killed.is_set():
            status = "signal: killed"
        payload = _lambda_error("Runtime.ExitError", request_id, f"Runtime exited with error: {status}")
        return Outcome(payload, "Runtime.ExitError", False)

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident set size of the sandbox's process in MB, from /proc (0 once it has exited)."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0.0, 0.0
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)

        def mb(name: str) -> float:
            return int(fields.get(name, "0 kB").split()[0]) / 1024

        return mb("VmRSS"), mb("VmHWM")

    def _over_memory(self) -> bool:
        _, peak = self.rss_mb()
        return peak > self.config.memory_mb

    def tmp_bytes(self) -> int:
        """Bytes the sandbox's files in /tmp hold now."""
        total = 0
        for root, _, files in os.walk(self.tmp_dir):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(root, name)).st_size
        return total

    def _over_ephemeral_storage(self) -> bool:
        return self.tmp_bytes() > self.config.ephemeral_mb * 2**20

    def _report(self, request_id: str, started: float) -> None:
        duration = (time.monotonic() - started) * 1000
        _, peak = self.rss_mb()
        init = f" Init Duration: {self.init_ms:.2f} ms" if self.invocations == 1 else ""
        line = (
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\tMemory Size: {self.config.memory_mb} MB"
            f"\tMax Memory Used: {max(peak, 1):.0f} MB{init}\n"
        )
        with self.log_path.open("a") as log:
            log.write(line)

    def kill(self) -> None:
        """Kill the process now (fault injection): a running invocation fails with ``Runtime.ExitError``."""
        self._killed.set()
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def close(self) -> None:
        """Shut the sandbox down for good (its process is killed, its channel and log stream closed); idempotent."""
        with self._closed:
            if self._is_closed:
                return
            self._is_closed = True
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self._requests.close()
        os.close(self._response_read)
