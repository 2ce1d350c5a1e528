"""The `vaultline` command line: human output by default, `--json` for scripts.

Exit codes: 0 done, 1 failed (the message names what), 2 bad usage.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from vaultline.cli.parser import build_parser
from vaultline.errors import VaultlineError


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `vaultline` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except VaultlineError as exc:
        from vaultline.cli.output import err

        err.print(f"vaultline: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        from vaultline.cli.output import err

        err.print("vaultline: interrupted; no recovery point was written")
        return 130


if __name__ == "__main__":
    sys.exit(main())
