#!/usr/bin/env python3
"""The Vaultline CDK app: `cdk synth` / `cdk deploy` (see cdk.json for the context it reads).

An invalid plans file or context value stops synth with one line naming the file, the plan and the field.
"""

from __future__ import annotations

import sys

from infra.app import build_app
from infra.settings import SettingsError
from vaultline.errors import VaultlineError


def main() -> int:
    try:
        app, _stack = build_app()
    except (VaultlineError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
