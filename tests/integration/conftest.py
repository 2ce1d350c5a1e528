"""Fixtures of the integration tests: the `vaultline` CLI run in this process, and a DynamoDB client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from vaultline.cli.main import main
from vaultline.repository.layout import MANIFEST_PREFIX
from vaultline.storage import Storage

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


def count_manifest_reads(monkeypatch: pytest.MonkeyPatch, storage: type[Storage]) -> list[str]:
    """The keys of every manifest ``storage`` (a storage class) reads from now on, in order, repeats included."""
    reads: list[str] = []
    get = storage.get

    def counting(self: Storage, key: str) -> bytes:
        if key.startswith(MANIFEST_PREFIX):
            reads.append(key)
        return get(self, key)

    monkeypatch.setattr(storage, "get", counting)
    return reads
