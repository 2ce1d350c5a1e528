"""The embedded Lambda runs each function as Lambda does: its runtime's CPython, only its code, layer and SDK.

Probe functions (tests/e2e/probe_functions/) are deployed next to the stack to look inside their sandboxes; the
last test runs the stack's real backup with a layer that lacks one package.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Deployment
from vaultline.aws import client
from vaultline.cli.stack import ExecutionFailed, follow, start
from vaultline_dev.embedded import EmbeddedAws
from vaultline_dev.embedded.lambdas import KillSandbox, invocations
from vaultline_dev.embedded.sandbox import pyenv_root

pytestmark = pytest.mark.e2e

PROBES = Path(__file__).with_name("probe_functions")
RUNTIME_BOTO3 = "1.38.36"  # layers/runtime-requirements.txt


class Probes:
    """Deploys probe functions into the embedded AWS and invokes them."""

    def __init__(self, aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> None:
        self.aws = aws
        self.monkeypatch = monkeypatch
        trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "*"}]}
        self.role_name = f"probe-{uuid.uuid4().hex[:8]}"
        self.role_arn = client("iam").create_role(RoleName=self.role_name, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]["Arn"]
        self.names: list[str] = []

    def deploy(
        self, handler: str, *, timeout: int = 30, memory: int = 256, runtime: str = "python3.12", tmp_mb: int = 512
    ) -> str:
        name = f"probe-{handler.rpartition('.')[2]}-{uuid.uuid4().hex[:8]}"
        client("lambda").create_function(
            FunctionName=name,
            Runtime=runtime,
            Role=self.role_arn,
            Handler=handler,
            Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},  # an empty archive: the code is PROBES, routed by name
            Timeout=timeout,
            MemorySize=memory,
            EphemeralStorage={"Size": tmp_mb},
            Environment={"Variables": {"PROBE_SETTING": "from the template"}},
        )
        self.monkeypatch.setitem(self.aws.lambdas.code_dirs, name, PROBES)
        self.names.append(name)
        return name

    def invoke(self, name: str, event: dict[str, Any] | None = None) -> tuple[dict[str, Any], str | None]:
        response = client("lambda").invoke(FunctionName=name, Payload=json.dumps(event or {}))
        payload: dict[str, Any] = json.loads(response["Payload"].read())
        return payload, response.get("FunctionError")

    def started(self, name: str) -> int:
        return self.aws.lambdas.pool.started.get(name, 0)


@pytest.fixture
def probes(embedded: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Probes]:
    yield Probes(embedded, monkeypatch)


@pytest.mark.parametrize(("runtime", "version"), [("python3.12", [3, 12]), ("python3.13", [3, 13])])
def test_function_runs_under_its_runtimes_cpython_and_cannot_import_the_dev_virtualenv(
    probes: Probes, monkeypatch: pytest.MonkeyPatch, runtime: str, version: list[int]
) -> None:
    monkeypatch.setenv("VAULTLINE_HOST_ONLY", "the test process's environment")
    name = probes.deploy("probe.describe", runtime=runtime)

    seen, error = probes.invoke(name, {"modules": ["moto", "pytest", "rich", "boto3", "aws_xray_sdk", "vaultline"]})

    assert error is None, seen
    assert seen["version"] == version
    assert Path(seen["executable"]).is_relative_to(pyenv_root() / "versions")
    assert seen["importable"] == {
        "moto": False,
        "pytest": False,
        "rich": False,
        "boto3": True,
        "aws_xray_sdk": True,
        "vaultline": True,
    }
    assert not any(".venv" in entry or "site-packages" in entry for entry in seen["path"]), seen["path"]
    assert seen["path"][0] == str(PROBES)
    env = seen["environment"]
    assert env["PROBE_SETTING"] == "from the template"
    assert "VAULTLINE_HOST_ONLY" not in env
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{runtime}"
    assert env["_HANDLER"] == "probe.describe"
    assert env["LAMBDA_TASK_ROOT"] == str(PROBES)
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_ENDPOINT_URL"] == probes.aws.endpoint
    assert env["AWS_ACCESS_KEY_ID"] != "testing", "the sandbox holds the harness's credentials, not its role's"
    assert seen["context"]["function_name"] == name
    assert seen["context"]["memory_limit_in_mb"] == "256"
    assert 0 < seen["context"]["remaining_ms"] <= 30_000


def test_function_acts_with_its_roles_credentials_through_the_runtimes_boto3(probes: Probes) -> None:
    name = probes.deploy("probe.caller")

    seen, error = probes.invoke(name)

    assert error is None, seen
    assert seen["boto3"] == RUNTIME_BOTO3
    assert f":assumed-role/{probes.role_name}/{name}" in seen["arn"]


def test_handler_output_goes_to_the_log_not_into_the_response(probes: Probes) -> None:
    name = probes.deploy("probe.describe")

    seen, error = probes.invoke(name)

    assert error is None and seen["version"] == [3, 12]
    log = probes.aws.lambdas.logs(name)
    assert "probe output on stdout: not a response {" in log
    assert "probe output on stderr" in log
    request_id = seen["context"]["aws_request_id"]
    for line in (f"START RequestId: {request_id}", f"END RequestId: {request_id}", f"REPORT RequestId: {request_id}"):
        assert line in log


def test_warm_sandbox_is_reused_and_concurrent_invocations_get_their_own(probes: Probes) -> None:
    name = probes.deploy("probe.describe")
    first, _ = probes.invoke(name)
    second, _ = probes.invoke(name)
    assert second["pid"] == first["pid"]
    assert probes.started(name) == 1

    slow = probes.deploy("probe.slow")
    threads = [threading.Thread(target=probes.invoke, args=(slow, {"seconds": 1})) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert probes.started(slow) == 2


def test_configuration_change_retires_the_warm_sandbox(probes: Probes) -> None:
    name = probes.deploy("probe.describe")
    before, _ = probes.invoke(name)
    client("lambda").update_function_configuration(
        FunctionName=name, Environment={"Variables": {"PROBE_SETTING": "re-deployed"}}
    )

    after, _ = probes.invoke(name)

    assert after["pid"] != before["pid"]
    assert after["environment"]["PROBE_SETTING"] == "re-deployed"
    assert not Path(f"/proc/{before['pid']}").exists(), "the old configuration's sandbox still runs"


def test_timeout_fails_the_invocation_as_sandbox_timedout_and_discards_the_sandbox(probes: Probes) -> None:
    name = probes.deploy("probe.slow", timeout=1)

    failed, error = probes.invoke(name, {"seconds": 20})

    assert error == "Unhandled"
    assert failed["errorType"] == "Sandbox.Timedout"
    assert failed["errorMessage"].endswith("Task timed out after 1.00 seconds")
    answered, error = probes.invoke(name, {"seconds": 0})
    assert error is None and answered == {"slept": 0}
    assert probes.started(name) == 2


def test_memory_size_exceeded_fails_the_invocation_as_out_of_memory(probes: Probes) -> None:
    name = probes.deploy("probe.allocate", memory=128)

    within, error = probes.invoke(name, {"mb": 32})
    assert error is None and within == {"allocated": 32}
    failed, error = probes.invoke(name, {"mb": 200})

    assert error == "Unhandled"
    assert failed["errorType"] == "Runtime.OutOfMemory"
    assert "Max Memory Used" in probes.aws.lambdas.logs(name)


def test_ephemeral_storage_exceeded_fails_the_invocation_as_a_full_tmp(probes: Probes) -> None:
    name = probes.deploy("probe.spill", tmp_mb=512)

    within, error = probes.invoke(name, {"mb": 100})
    assert error is None and within["written"] == 100
    assert within["in"] != "/tmp", "the sandbox's /tmp is its own"
    failed, error = probes.invoke(name, {"mb": 600})

    assert error == "Unhandled"
    assert failed["errorType"] == "OSError" and "No space left on device" in failed["errorMessage"]


def test_killed_sandbox_fails_its_invocation_as_a_runtime_exit(probes: Probes) -> None:
    name = probes.deploy("probe.slow")
    probes.invoke(name, {"seconds": 0})  # warm: the kill below hits a running handler, not a cold start
    outcome: dict[str, Any] = {}

    def invoke() -> None:
        outcome["payload"], outcome["error"] = probes.invoke(name, {"seconds": 30})

    thread = threading.Thread(target=invoke)
    thread.start()
    killed = 0
    while killed == 0 and thread.is_alive():
        killed = probes.aws.lambdas.kill_running(name)
        thread.join(timeout=0.01)
    thread.join()

    assert killed == 1
    assert outcome["error"] == "Unhandled"
    assert outcome["payload"]["errorType"] == "Runtime.ExitError"
    assert outcome["payload"]["errorMessage"].endswith("Runtime exited with error: signal: killed")


def test_interceptor_kills_one_invocation_mid_way_and_spares_one_that_finished(
    probes: Probes, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = probes.deploy("probe.slow")
    monkeypatch.setattr(invocations, "interceptors", [_kill_after(0.3)])

    killed, error = probes.invoke(name, {"seconds": 10})
    spared, spared_error = probes.invoke(name, {"seconds": 0})

    assert error == "Unhandled" and killed["errorType"] == "Runtime.ExitError"
    assert spared_error is None and spared == {"slept": 0}


def _kill_after(seconds: float) -> Callable[[str, dict[str, Any]], None]:
    def interceptor(function: str, event: dict[str, Any]) -> None:
        raise KillSandbox(after_seconds=seconds)

    return interceptor


def test_unhandled_exception_comes_back_named_by_its_class(probes: Probes) -> None:
    name = probes.deploy("probe.fail")

    failed, error = probes.invoke(name, {"message": "as asked"})

    assert error == "Unhandled"
    assert failed["errorType"] == "ProbeFailure"
    assert failed["errorMessage"] == "as asked"
    assert any("probe.py" in frame for frame in failed["stackTrace"])


def test_import_error_surfaces_as_runtime_import_module_error(probes: Probes) -> None:
    name = probes.deploy("broken_import.handler")

    failed, error = probes.invoke(name)

    assert error == "Unhandled"
    assert failed["errorType"] == "Runtime.ImportModuleError"
    assert failed["errorMessage"] == (
        "Unable to import module 'broken_import': No module named 'a_package_no_layer_ships'"
    )


def test_missing_runtime_fails_the_invocation_naming_what_to_install(
    probes: Probes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    name = probes.deploy("probe.describe", runtime="python3.13")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))

    failed, error = probes.invoke(name)

    assert error == "Unhandled"
    assert failed["errorType"] == "Runtime.NotInstalled"
    assert "python3.13" in failed["errorMessage"] and "pyenv install 3.13" in failed["errorMessage"]


def _layer_without(layer: Path, package: str, into: Path) -> Path:
    """A copy of ``layer`` (symbolic links, so it costs nothing) that lacks ``package`` and its metadata."""
    site = into / "python"
    site.mkdir(parents=True)
    for entry in (layer / "python").iterdir():
        if not entry.name.startswith(package):
            (site / entry.name).symlink_to(entry)
    return into


def test_backup_fails_at_import_when_the_layer_lacks_aws_xray_sdk(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lambdas = deployment.aws.lambdas
    monkeypatch.setattr(lambdas, "layer_dir", _layer_without(lambdas.layer_dir, "aws_xray_sdk", tmp_path / "layer"))
    client("s3").create_bucket(Bucket="photos")
    client("s3").put_object(Bucket="photos", Key="a.txt", Body=b"a")

    execution = start(deployment.stack.backup_state_machine, deployment.plan_input("s3://photos"))
    with pytest.raises(ExecutionFailed) as failure:
        follow(execution, poll_seconds=0.05)

    assert "Runtime.ImportModuleError" in str(failure.value)
    assert "No module named 'aws_xray_sdk'" in str(failure.value)
