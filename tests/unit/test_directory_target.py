"""DirectoryTarget: which keys can be files, and which collide."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultline.errors import TargetError
from vaultline.repository.manifest import ObjectEntry
from vaultline.targets import DirectoryTarget


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("a/../b", "'.' or '..'"),
        ("../escape", "'.' or '..'"),
        ("a/./b", "'.' or '..'"),
        ("/etc/x", "absolute path"),
        ("a//b", "empty path component"),
        ("", "empty key"),
        ("a\x00b", "NUL"),
        ("x" * 1000, "longer than 255 bytes"),
        ("dir/" + "é" * 128, "longer than 255 bytes"),
    ],
)
def test_unsafe_keys_are_rejected_with_a_reason(key: str, reason: str) -> None:
    found = DirectoryTarget.unsafe_reason(key)
    assert found is not None and reason in found


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "a/b/c.txt",
        "ünïcödé/日本語/😀.bin",
        "spaces in name",
        "100%+#?&=.txt",
        "x" * 255,
        "..hidden",
        "a..b",
        "dir/",
    ],
)
def test_safe_keys_are_accepted(key: str) -> None:
    assert DirectoryTarget.unsafe_reason(key) is None


def entries(*keys: str) -> list[ObjectEntry]:
    return [ObjectEntry(key=k, size=0) for k in keys]


def test_plan_maps_safe_keys_and_reports_unsafe_ones(tmp_path: Path) -> None:
    target = DirectoryTarget(tmp_path)
    mapped, rejected = target.plan(entries("ok.txt", "a/../b", "/etc/x", "x" * 1000, "日本/語.txt"))
    assert [key for _, key in mapped] == ["ok.txt", "日本/語.txt"]
    assert {key for key, _ in rejected} == {"a/../b", "/etc/x", "x" * 1000}


def test_plan_reports_a_file_that_collides_with_a_directory(tmp_path: Path) -> None:
    mapped, rejected = DirectoryTarget(tmp_path).plan(entries("a", "a/b"))
    assert [key for _, key in mapped] == ["a/b"]
    assert rejected == [("a", "collides with a directory of the same name")]


def test_plan_reports_a_file_that_collides_with_a_nested_directory(tmp_path: Path) -> None:
    mapped, rejected = DirectoryTarget(tmp_path).plan(entries("x/y", "x/y/z/w"))
    assert [key for _, key in mapped] == ["x/y/z/w"]
    assert [key for key, _ in rejected] == ["x/y"]


def test_plan_reports_case_collisions(tmp_path: Path) -> None:
    mapped, rejected = DirectoryTarget(tmp_path).plan(entries("Report.txt", "report.TXT"))
    assert [key for _, key in mapped] == ["Report.txt"]
    assert len(rejected) == 1 and rejected[0][0] == "report.TXT"
    assert "Report.txt" in rejected[0][1]


def test_plan_reports_unicode_normalization_collisions(tmp_path: Path) -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    mapped, rejected = DirectoryTarget(tmp_path).plan(entries(composed, decomposed))
    assert [key for _, key in mapped] == [composed]
    assert [key for key, _ in rejected] == [decomposed]
    assert "normalization" in rejected[0][1]


def test_plan_skips_folder_markers(tmp_path: Path) -> None:
    mapped, rejected = DirectoryTarget(tmp_path).plan(entries("dir/", "dir/file"))
    assert [key for _, key in mapped] == ["dir/file"]
    assert rejected == []


def test_write_creates_parents_and_files(tmp_path: Path) -> None:
    target = DirectoryTarget(tmp_path / "out")
    entry = ObjectEntry(key="a/b/c.bin", size=6)
    target.write(entry, entry.key, iter([b"abc", b"def"]))
    assert (tmp_path / "out" / "a" / "b" / "c.bin").read_bytes() == b"abcdef"
    assert [p.name for p in (tmp_path / "out" / "a" / "b").iterdir()] == ["c.bin"]


def test_write_never_leaves_a_partial_file_when_chunks_fail(tmp_path: Path) -> None:
    target = DirectoryTarget(tmp_path)

    def chunks():
        yield b"part"
        raise RuntimeError("read failed")

    with pytest.raises(RuntimeError):
        target.write(ObjectEntry(key="f", size=8), "f", chunks())
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_to_escape_the_root(tmp_path: Path) -> None:
    target = DirectoryTarget(tmp_path / "root")
    with pytest.raises(TargetError, match="outside"):
        target.write(ObjectEntry(key="../x", size=0), "../x", iter([b""]))


def test_uncreatable_target_directory_raises_target_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(TargetError, match="cannot create target directory"):
        DirectoryTarget(blocker / "sub")


def test_plan_reports_a_file_that_collides_with_a_directory_differing_in_case(tmp_path: Path) -> None:
    # On a case-insensitive disk, file "readme" and directory "README/" are one name: one of them must be reported.
    mapped, rejected = DirectoryTarget(tmp_path).plan(entries("readme", "README/notes.txt"))
    assert [key for _, key in mapped] == ["README/notes.txt"]
    assert [key for key, _ in rejected] == ["readme"]
