"""Hypothesis strategies shared by the round-trip property tests (local directory and S3)."""

from __future__ import annotations

import random

from hypothesis import strategies as st

MiB = 1024 * 1024
# Mostly small objects (the common case), some cut by FastCDC, a few up to 3 MiB.
object_sizes = st.one_of(
    st.just(0),
    st.integers(1, 4096),
    st.integers(1, 4096),
    st.integers(4097, 700 * 1024),
    st.integers(700 * 1024, 3 * MiB),
)


def object_body(size: int, seed: int, compressible: bool, period: int = 97) -> bytes:
    """``size`` bytes from ``seed``: a repeated random run of ``period`` bytes (zstd shrinks it) or noise."""
    rng = random.Random(seed)
    if compressible:
        return (rng.randbytes(period) * (size // period + 1))[:size]
    return rng.randbytes(size)
