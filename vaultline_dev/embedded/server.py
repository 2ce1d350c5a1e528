"""Start moto's server on 127.0.0.1 in this process, configured to execute state machines, with the embedded Lambda."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from types import TracebackType

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from vaultline.aws import reset_clients
from vaultline_dev.embedded import builds, iam, service_gaps, speedups, stepfunctions_limits
from vaultline_dev.embedded.faults import FaultInjector, moto_role_lookup
from vaultline_dev.embedded.lambdas import LambdaRuntime, SandboxPool, restore_moto_lambda, route_lambda_to_sandboxes
from vaultline_dev.embedded.sandbox import runtime_python

MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


class _Server(ThreadedMotoServer):
    """moto's threaded server with our middleware in front of its WSGI application."""

    def __init__(self, faults: FaultInjector, port: int) -> None:
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self._faults = faults

    def _server_entry(self) -> None:
        app = self._faults.middleware(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


class EmbeddedAws:
    """A context manager: the server runs, and this process's boto3 clients point at it, while it is open."""

    def __init__(
        self,
        functions_dir: str | Path = "functions",
        port: int = 0,
        quiet: bool = False,
        layer_dir: Path | None = None,
        log_dir: Path | None = None,
    ) -> None:
        """``layer_dir`` defaults to the layer's host twin (built if stale); ``log_dir`` (the functions' log
        streams, one file per sandbox under a folder per function) to a fresh temporary directory."""
        self.functions_dir = Path(functions_dir).resolve()
        self.quiet = quiet
        self.layer_dir = layer_dir
        self.log_dir = log_dir
        # Faults a test may switch on (``aws.faults.set_rates(...)``); none until then.
        self.faults = FaultInjector(lookup_role=moto_role_lookup)
        self._server = _Server(self.faults, port)
        self._saved_env: dict[str, str | None] = {}
        self.endpoint = ""
        self.iam: iam.Enforcer | None = None
        self._lambdas: LambdaRuntime | None = None
        self._own_log_dir: Path | None = None

    @property
    def lambdas(self) -> LambdaRuntime:
        """The embedded Lambda: its code, layer and sandbox pool (tests change the layer or kill sandboxes here)."""
        if self._lambdas is None:
            raise RuntimeError("the embedded AWS is not open")
        return self._lambdas

    def __enter__(self) -> EmbeddedAws:
        # werkzeug logs every request at INFO; the demo's report is what a user should read.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        if self.quiet:
            # The interpreter logs every handled state failure (caught and retried ones too) as a warning.
            logging.getLogger("moto").setLevel(logging.ERROR)
        # The layer is built for the stack's runtime, CPython 3.12: without it nothing can run, so say so first.
        runtime_python("python3.12")
        layer_dir = self.layer_dir or builds.host_layer()
        if self.log_dir is None:
            self._own_log_dir = log_dir = Path(tempfile.mkdtemp(prefix="vaultline-lambda-logs-"))
        else:
            log_dir = self.log_dir
        # Before the first request: the first request's account lookup is what built the unused IAM backends.
        speedups.install()
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        env = {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint,
            # moto's state-machine interpreter calls S3 and Lambda at localhost:$MOTO_PORT.
            "MOTO_PORT": str(port),
            # Roles attach AWS managed policies (AWSLambdaBasicExecutionRole): moto knows them when asked to.
            "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
        }
        for key, value in env.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        reset_clients()
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/config",
            data=json.dumps(MOTO_CONFIG).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).close()
        self._lambdas = LambdaRuntime(
            code_dir=self.functions_dir,
            layer_dir=layer_dir,
            sdk_dir=functools.cache(builds.runtime_sdk),
            endpoint=self.endpoint,
            region=FAKE_CREDENTIALS["AWS_REGION"],
            pool=SandboxPool(log_dir),
        )
        route_lambda_to_sandboxes(self._lambdas)
        stepfunctions_limits.install()
        service_gaps.install()
        # Every request is authorized from here on; the harness's own key is the account's administrator.
        self.iam = iam.enforce(FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], self.endpoint)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        iam.stop_enforcing()
        restore_moto_lambda()
        service_gaps.uninstall()
        speedups.uninstall()
        stepfunctions_limits.uninstall()
        self._lambdas = None
        if self._own_log_dir is not None:
            shutil.rmtree(self._own_log_dir, ignore_errors=True)
        self._server.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_clients()
