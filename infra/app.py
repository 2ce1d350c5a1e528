"""Building the CDK app: one function shared by `app.py` (cdk synth/deploy) and the infrastructure tests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from infra import constants as c
from infra.nag import add_nag_checks
from infra.settings import StackSettings
from infra.stack import VaultlineStack, load_stack_plans
from infra.vault_account import VaultAccountStack


def cdk_json_context(path: Path = c.ROOT / "cdk.json") -> dict[str, Any]:
    """The `context` block of cdk.json, so that tests synthesize with the settings `cdk synth` uses."""
    if not path.is_file():
        return {}
    context: dict[str, Any] = json.loads(path.read_text()).get("context", {})
    return context


def build_app(
    context: Mapping[str, Any] | None = None,
    *,
    nag: bool = True,
    outdir: str | None = None,
    stage_assets: bool = True,
) -> tuple[cdk.App, VaultlineStack]:
    """Create the app and its one stack. ``context`` overrides cdk.json's context (as `-c key=value` would).

    ``nag`` adds the cdk-nag AWS Solutions checks (an unacknowledged finding fails synth); ``stage_assets=False``
    references assets in place instead of copying ~60 MB of layer into the cloud assembly (tests only).
    """
    merged: dict[str, Any] = {**c.FEATURE_FLAGS, **cdk_json_context(), **dict(context or {})}
    if not stage_assets:
        merged["aws:cdk:disable-asset-staging"] = True
    app = cdk.App(context=merged, outdir=outdir) if outdir else cdk.App(context=merged)
    settings = StackSettings.from_context(app.node)
    plans = load_stack_plans(settings)
    stack_name = str(app.node.try_get_context(c.CTX_STACK_NAME) or c.DEFAULT_STACK_NAME)
    air_gap = settings.vault_account
    if air_gap is not None:
        # A vault in its own account: its stack first (`cdk deploy VaultlineVault` there), then this one.
        VaultAccountStack(
            app,
            air_gap.vault_stack_name,
            settings=settings,
            plans=plans,
            air_gap=air_gap,
            protected_stack=stack_name,
            synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False),
        )
    stack = VaultlineStack(
        app,
        stack_name,
        settings=settings,
        plans=plans,
        # No bootstrap-version rule: synth and tests must work without a bootstrapped account.
        synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False),
    )
    if nag:
        add_nag_checks(app)
    return app, stack
