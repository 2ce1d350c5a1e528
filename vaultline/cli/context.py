"""What a command works on, from its arguments and the environment: the vault, the deployed stack."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from vaultline.errors import UsageError
from vaultline.repository.vault import Vault
from vaultline.storage import open_storage

if TYPE_CHECKING:
    from vaultline.cli.stack import StackInfo


def stack_of(args: argparse.Namespace) -> StackInfo:
    """The deployed stack ``--stack`` (or ``$VAULTLINE_STACK``, or ``Vaultline``) names."""
    # Only the commands that drive the stack import its client (botocore): a local vault's commands never do.
    from vaultline.cli.stack import find_stack

    return find_stack(args.stack or os.environ.get("VAULTLINE_STACK") or "Vaultline")


def vault_url(args: argparse.Namespace) -> str:
    """``--vault``, else ``$VAULTLINE_VAULT``, else the vault of the ``--stack`` given."""
    url: str | None = args.vault or os.environ.get("VAULTLINE_VAULT")
    if not url and args.stack:
        url = stack_of(args).vault_url
    if not url:
        raise UsageError("no vault given: pass --vault URL or set VAULTLINE_VAULT")
    return url


def read_passphrase_file(path: str) -> bytes:
    """A passphrase from a file: its bytes, less trailing line ends (CR and LF), so ``echo pw > F`` works."""
    try:
        passphrase = Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise UsageError(f"cannot read the passphrase file {path}: {exc.strerror or exc}") from None
    if not passphrase:
        raise UsageError(f"the passphrase file {path} is empty")
    return passphrase


def passphrase_of(args: argparse.Namespace) -> bytes | None:
    """The passphrase of ``--passphrase-file`` (or ``$VAULTLINE_PASSPHRASE_FILE``), or None to open by KMS."""
    path: str | None = getattr(args, "passphrase_file", None) or os.environ.get("VAULTLINE_PASSPHRASE_FILE")
    return read_passphrase_file(path) if path else None


def open_vault(args: argparse.Namespace) -> Vault:
    """Open the vault the command names (VaultNotFound if there is none): with the passphrase file given, by a
    passphrase key slot and no call to KMS; otherwise by KMS."""
    return Vault.open(open_storage(vault_url(args)), passphrase=passphrase_of(args))
