"""Defaults that the command line shows in its help: here, in a module that imports nothing, so that
``vaultline --help`` does not load the operations they belong to (prune, stats) to print them."""

from __future__ import annotations

# Repack a pack when less than half of its blob bytes are live: copying s bytes frees (1 - s) bytes, so below
# one half every byte copied frees more than a byte, and each pack is rewritten at most about log2(n) times
# over its data's life. restic's default (--max-unused 5 %) repacks more eagerly, at a higher request cost.
DEFAULT_REPACK_THRESHOLD = 0.5

# S3 Standard in us-east-1, first 50 TB, per GB-month (AWS's GB is 2^30 bytes). Other regions and classes differ:
# the CLI takes the price as an option.
S3_STANDARD_PER_GIB_MONTH = 0.023
