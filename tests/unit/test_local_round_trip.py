"""Property: any directory tree backed up into a local vault restores bit for bit (no AWS)."""

from __future__ import annotations

import tempfile
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import object_body, object_sizes
from vaultline.operations.backup import run_backup
from vaultline.operations.check import check_vault
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.repository.vault import Vault
from vaultline.sources import LocalSource
from vaultline.storage import LocalStorage
from vaultline.targets import DirectoryTarget

COMPONENT_ALPHABET = st.sampled_from([*list("abcXYZ019 _-%+#?=&,;@~()[]"), "é", "ß", "日", "本", "😀", "Ω"])
components = st.text(COMPONENT_ALPHABET, min_size=1, max_size=12).filter(lambda c: c.strip(".") != "")
keys = st.lists(components, min_size=1, max_size=3).map("/".join)
sizes = object_sizes
bodies = st.tuples(sizes, st.integers(0, 2**32), st.booleans())


def body(size: int, seed: int, compressible: bool) -> bytes:
    return object_body(size, seed, compressible)


def consistent(tree: dict[str, object]) -> bool:
    """No file is also a directory, and no two keys fold to the same name (what a directory can hold)."""
    folded = [unicodedata.normalize("NFC", k).casefold() for k in tree]
    if len(set(folded)) != len(folded):
        return False
    directories = {"/".join(k.split("/")[:i]) for k in folded for i in range(1, k.count("/") + 1)}
    return not directories.intersection(folded)


trees = st.dictionaries(keys, bodies, min_size=1, max_size=6).filter(consistent)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees)
def test_directory_round_trip_is_bit_exact(tree: dict[str, tuple[int, int, bool]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src, dst = root / "src", root / "dst"
        expected = {key: body(*spec) for key, spec in tree.items()}
        for key, data in expected.items():
            path = src.joinpath(*key.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        vault = Vault.init(LocalStorage(root / "vault"))
        rp = run_backup(vault, LocalSource(src))
        assert rp.stats.objects == len(expected)
        assert rp.stats.bytes == sum(map(len, expected.values()))

        reopened = Vault.open(str(root / "vault"))
        outcome = restore_entries(reopened, select_entries(reopened, rp), DirectoryTarget(dst))
        assert outcome.unmappable == []
        restored = {p.relative_to(dst).as_posix(): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
        assert restored == expected
        assert check_vault(reopened, read_data=True).errors == []

        again = run_backup(reopened, LocalSource(src))
        assert again.stats.objects_read == 0
        assert again.stats.new_chunks == 0
