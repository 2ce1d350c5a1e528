"""The embedded AWS for e2e tests: the stack synthesized once per run (xdist workers share it), deployed per test."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vaultline.cli.stack import StackInfo, find_stack
from vaultline_dev.embedded import EmbeddedAws, deploy_template
from vaultline_dev.embedded.deploy import DeployedStack, register_stack
from vaultline_dev.embedded.lambdas import invocations
from vaultline_dev.embedded.server import MOTO_CONFIG
from vaultline_dev.embedded.synth import synthesize

PROJECT = Path(__file__).resolve().parents[2]
E2E_CONTEXT = {
    "exportPollSeconds": 1,
    "objectLockRetentionDays": 0,
    # IAM is enforced: functions may read only what a plan names and restore only into the configured targets.
    "plansFile": "tests/e2e/plans.yaml",
    "restoreTargetBuckets": ["vaultline-*", "restored", "cli-restore"],
}


def shared_synth(
    tmp_path_factory: pytest.TempPathFactory, stack: str, context: dict[str, Any]
) -> tuple[dict[str, Any], Path]:
    """``stack``'s template synthesized from ``context``, and the cdk.out holding every stack of that synth.

    Under pytest-xdist every worker would synthesize the same app for itself (about half a minute of CPU each on
    a 2-core box); the first worker to ask synthesizes into this run's shared base directory, under a lock, and
    the others read its output. The directory is the run's own, so a later run never sees a stale template.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        out = tmp_path_factory.mktemp("cdk.out")
        return synthesize(PROJECT, stack, out, context=context), out
    key = hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()[:16]
    root = tmp_path_factory.getbasetemp().parent / f"synth-{key}"
    root.mkdir(exist_ok=True)
    out = root / "cdk.out"
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "done").exists():
            shutil.rmtree(out, ignore_errors=True)
            synthesize(PROJECT, stack, out, context=context)
            (root / "done").touch()
    template: dict[str, Any] = json.loads((out / f"{stack}.template.json").read_text())
    return template, out


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # The settings tests change: an export poll of 1 s, so a test can go round the export Wait loop, and no Object
    # Lock retention, so that retention and prune can delete what a test wrote a moment ago (with cdk.json's 30
    # days they rightly hold it: tests/integration/test_deployed_vault.py). Everything else is what `cdk synth`
    # produces from cdk.json.
    return shared_synth(tmp_path_factory, "Vaultline", E2E_CONTEXT)[0]


_iam_figures: list[str] = []


@pytest.fixture(scope="session")
def embedded() -> Iterator[EmbeddedAws]:
    with EmbeddedAws(PROJECT / "functions", quiet=True) as aws:
        yield aws
        if aws.iam is not None and aws.iam.simulator.median_ms() is not None:
            count = len(aws.iam.simulator.timings)
            _iam_figures.append(f"{count} decisions, median {aws.iam.simulator.median_ms():.2f} ms each")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The IAM evaluator's cost per authorized request over the run (docs/embedded-aws.md, "IAM")."""
    for line in _iam_figures:
        terminalreporter.write_line(f"embedded AWS IAM: {line}")


class Deployment:
    """A freshly deployed stack and what the tests need of it."""

    def __init__(self, aws: EmbeddedAws, deployed: DeployedStack, stack: StackInfo) -> None:
        self.aws = aws
        self.deployed = deployed
        self.stack = stack

    def plan_input(self, url: str, **extra: Any) -> dict[str, Any]:
        base = dict(self.stack.plans["demo"][0])
        base["source"] = {**base["source"], "url": url, "exclude": []}
        return {**base, **extra}


def deploy_stack(aws: EmbeddedAws, template: dict[str, Any]) -> Deployment:
    """Reset the embedded AWS and deploy ``template`` into it (tests that deploy an edited template call this)."""
    _post(aws.endpoint + "/moto-api/reset", {})
    _post(aws.endpoint + "/moto-api/config", MOTO_CONFIG)
    from vaultline.aws import reset_clients

    reset_clients()
    # Warm sandboxes hold the reset account's role credentials: a fresh deploy starts them afresh, as AWS would.
    aws.lambdas.pool.shutdown()
    invocations.calls.clear()
    invocations.errors.clear()
    invocations.interceptors.clear()
    deployed = deploy_template(template)
    register_stack("Vaultline", deployed.outputs)
    return Deployment(aws, deployed, find_stack("Vaultline"))


@pytest.fixture
def deployment(embedded: EmbeddedAws, template: dict[str, Any]) -> Iterator[Deployment]:
    yield deploy_stack(embedded, template)
    invocations.interceptors.clear()


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    urllib.request.urlopen(request, timeout=30).close()
