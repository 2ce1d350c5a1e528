"""What a command works on, from its arguments and the environment: the vault, the deployed stack."""

from __future__ import annotations

import argparse
import os

from vaultline.cli.stack import StackInfo, find_stack
from vaultline.errors import UsageError
from vaultline.repository.vault import Vault
from vaultline.storage import open_storage


def stack_of(args: argparse.Namespace) -> StackInfo:
    """The deployed stack ``--stack`` (or ``$VAULTLINE_STACK``, or ``Vaultline``) names."""
    return find_stack(args.stack or os.environ.get("VAULTLINE_STACK") or "Vaultline")


def vault_url(args: argparse.Namespace) -> str:
    """``--vault``, else ``$VAULTLINE_VAULT``, else the vault of the ``--stack`` given."""
    url: str | None = args.vault or os.environ.get("VAULTLINE_VAULT")
    if not url and args.stack:
        url = stack_of(args).vault_url
    if not url:
        raise UsageError("no vault given: pass --vault URL or set VAULTLINE_VAULT")
    return url


def open_vault(args: argparse.Namespace) -> Vault:
    """Open the vault the command names (VaultNotFound if there is none)."""
    return Vault.open(open_storage(vault_url(args)))
