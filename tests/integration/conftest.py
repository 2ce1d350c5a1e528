"""Fixtures of the integration tests: the `vaultline` CLI run in this process, and a DynamoDB client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from vaultline.cli.main import main

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run the CLI; return (exit code, stdout, stderr). argparse's SystemExit counts as an exit code."""

    def invoke(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


@pytest.fixture
def ddb(aws: None) -> Any:
    """A DynamoDB client of the in-process moto AWS."""
    return boto3.client("dynamodb", region_name="us-east-1")
