"""The CLI contract: commands, --json shapes, VAULTLINE_VAULT, and exit codes (0 done, 1 failed, 2 bad usage)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Run


@pytest.fixture
def bucket(s3: Any, make_bucket: Callable[..., str]) -> str:
    make_bucket("media")
    for key, body in {
        "site/index.html": b"<html>home</html>",
        "site/app.js": b"console.log(1)" * 100,
        "site/cache/tmp.bin": b"scratch",
        "site/img/logo.png": b"\x89PNG" + bytes(range(256)) * 40,
        "other/readme.md": b"# not under the prefix",
    }.items():
        s3.put_object(Bucket="media", Key=key, Body=body, ContentType="application/x-test", Metadata={"src": "t"})
    make_bucket("vaults")
    make_bucket("restored")
    return "media"


def one_json(text: str) -> Any:
    """stdout must hold exactly one JSON document."""
    return json.loads(text)


def test_init_creates_a_vault_and_refuses_a_second_one(aws: None, run: Run, make_bucket: Callable[..., str]) -> None:
    make_bucket("vaults")
    code, out, _ = run("--vault", "s3://vaults/main", "init", "--json")
    assert code == 0
    created = one_json(out)
    assert created["vault"] == "s3://vaults/main"
    assert created["encryption"] == "none"
    assert len(created["vault_id"]) == 32
    code, _, err = run("--vault", "s3://vaults/main", "init")
    assert code == 1
    assert "already exists" in err


def test_backup_with_exclude_prints_one_json_object_with_stats(bucket: str, run: Run) -> None:
    assert run("--vault", "s3://vaults/v", "init")[0] == 0
    code, out, err = run("--vault", "s3://vaults/v", "backup", "s3://media/site", "--exclude", "*/cache/*", "--json")
    assert code == 0, err
    result = one_json(out)
    assert isinstance(result, dict)
    assert result["recovery_point"]
    assert result["source"] == "s3://media/site"
    datetime.fromisoformat(result["time"])
    for field in ("objects", "bytes_read", "bytes_stored", "new_chunks", "seconds"):
        assert isinstance(result[field], int | float), field
    assert result["objects"] == 3
    assert result["bytes_read"] > 0
    assert result["new_chunks"] >= 4  # three objects and the manifest's entry stream

    code, out, _ = run("--vault", "s3://vaults/v", "backup", "s3://media/site", "--exclude", "*/cache/*", "--json")
    again = one_json(out)
    assert again["bytes_read"] == 0
    assert again["new_chunks"] == 0


def test_vaultline_vault_env_var_replaces_the_option(bucket: str, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTLINE_VAULT", "s3://vaults/from-env")
    assert run("init")[0] == 0
    code, out, _ = run("backup", "s3://media", "--json")
    assert code == 0
    rp = one_json(out)["recovery_point"]
    code, out, _ = run("list", "--json")
    assert [p["id"] for p in one_json(out)] == [rp]
    # --vault wins over the environment.
    code, _, err = run("--vault", "s3://vaults/elsewhere", "list")
    assert code == 1
    assert "s3://vaults/elsewhere" in err


def test_list_json_is_an_array_with_id_source_and_iso_time(bucket: str, run: Run) -> None:
    run("--vault", "s3://vaults/v", "init")
    code, out, _ = run("--vault", "s3://vaults/v", "list", "--json")
    assert code == 0 and one_json(out) == []
    first = one_json(run("--vault", "s3://vaults/v", "backup", "s3://media/site", "--json")[1])
    second = one_json(run("--vault", "s3://vaults/v", "backup", "s3://media/other", "--json", "--tag", "env=ci")[1])
    code, out, _ = run("--vault", "s3://vaults/v", "list", "--json")
    points = one_json(out)
    assert isinstance(points, list)
    assert {p["id"] for p in points} == {first["recovery_point"], second["recovery_point"]}
    by_id = {p["id"]: p for p in points}
    assert by_id[first["recovery_point"]]["source"] == "s3://media/site"
    assert by_id[second["recovery_point"]]["tags"] == {"env": "ci"}
    for point in points:
        stamp = datetime.fromisoformat(point["time"])
        assert stamp.tzinfo is not None and stamp.utcoffset() is not None
        assert stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]

    code, out, _ = run("--vault", "s3://vaults/v", "list")
    assert code == 0
    assert first["recovery_point"] in out and "s3://media/site" in out


def test_ls_lists_keys_under_an_optional_prefix(bucket: str, run: Run) -> None:
    run("--vault", "s3://vaults/v", "init")
    rp = one_json(run("--vault", "s3://vaults/v", "backup", "s3://media", "--json")[1])["recovery_point"]
    code, out, _ = run("--vault", "s3://vaults/v", "ls", rp, "--json")
    assert code == 0
    listed = one_json(out)
    assert [e["key"] for e in listed] == sorted(
        ["site/index.html", "site/app.js", "site/cache/tmp.bin", "site/img/logo.png", "other/readme.md"]
    )
    assert all("chunks" not in e for e in listed)
    assert listed[0]["content_type"] == "application/x-test"
    code, out, _ = run("--vault", "s3://vaults/v", "ls", rp, "site/img/", "--json")
    assert [e["key"] for e in one_json(out)] == ["site/img/logo.png"]
    code, out, _ = run("--vault", "s3://vaults/v", "ls", "latest", "site/")
    assert code == 0
    assert "site/app.js" in out and "other/readme.md" not in out


def test_restore_to_s3_with_include_prints_json(s3: Any, bucket: str, run: Run) -> None:
    run("--vault", "s3://vaults/v", "init")
    rp = one_json(run("--vault", "s3://vaults/v", "backup", "s3://media", "--json")[1])["recovery_point"]
    code, out, err = run(
        "--vault", "s3://vaults/v", "restore", rp, "--to", "s3://restored/copy", "--include", "site/*.html", "--json"
    )
    assert code == 0, err
    result = one_json(out)
    assert result["recovery_point"] == rp
    assert result["target"] == "s3://restored/copy/"
    assert result["objects"] == 1
    assert result["unmappable_keys"] == []
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="restored")["Contents"]]
    assert keys == ["copy/site/index.html"]
    restored = s3.get_object(Bucket="restored", Key="copy/site/index.html")
    assert restored["Body"].read() == b"<html>home</html>"
    assert restored["Metadata"] == {"src": "t"}


def test_backup_and_restore_a_directory(
    tmp_path: Path, run: Run, read_tree: Callable[[Path], dict[str, bytes]]
) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"a" * 10_000)
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)))
    (src / "sub" / "skip.tmp").write_bytes(b"x")
    vault = str(tmp_path / "vault")
    assert run("--vault", vault, "init")[0] == 0
    code, out, _ = run("--vault", vault, "backup", str(src), "--exclude", "*.tmp")
    assert code == 0
    assert "recovery point" in out
    code, out, err = run("--vault", vault, "restore", "latest", "--to", str(tmp_path / "out"))
    assert code == 0, err
    assert "restored 2 objects" in out
    assert read_tree(tmp_path / "out") == {"a.txt": b"a" * 10_000, "sub/b.bin": bytes(range(256))}


def test_check_and_check_read_data_exit_0_on_a_sound_vault(bucket: str, run: Run) -> None:
    run("--vault", "s3://vaults/v", "init")
    run("--vault", "s3://vaults/v", "backup", "s3://media")
    code, out, _ = run("--vault", "s3://vaults/v", "check")
    assert code == 0
    assert "no errors" in out
    code, out, _ = run("--vault", "s3://vaults/v", "check", "--read-data")
    assert code == 0
    assert "read 1 packs" in out
    code, out, _ = run("--vault", "s3://vaults/v", "check", "--read-data", "--json")
    report = one_json(out)
    assert report["ok"] is True
    assert report["errors"] == []
    assert report["packs_read"] == 1


def test_restore_of_unmappable_keys_to_a_directory_reports_them_and_exits_1(
    s3: Any, make_bucket: Callable[..., str], tmp_path: Path, run: Run
) -> None:
    make_bucket("awkward")
    keys = {
        "fine.txt": b"fine",
        "dir/nested.txt": b"nested",
        "a/../escape": b"escape",
        "/abs/path": b"absolute",
        "x" * 300: b"long",
        "dir": b"file where a directory must go",
        "Fine.TXT": b"case twin",
    }
    for key, body in keys.items():
        s3.put_object(Bucket="awkward", Key=key, Body=body)
    vault = str(tmp_path / "vault")
    run("--vault", vault, "init")
    run("--vault", vault, "backup", "s3://awkward")

    out_dir = tmp_path / "out"
    code, out, err = run("--vault", vault, "restore", "latest", "--to", str(out_dir), "--json")
    assert code == 1
    result = one_json(out)
    assert result["objects"] == 2
    assert result["unmappable"] == 5
    reported = {item["key"]: item["reason"] for item in result["unmappable_keys"]}
    # Entries come in key order, so "Fine.TXT" is placed first and its case twin "fine.txt" is the one reported.
    assert set(reported) == {"a/../escape", "/abs/path", "x" * 300, "dir", "fine.txt"}
    assert all(reported.values())
    assert "5 keys could not be restored" in err
    assert (out_dir / "Fine.TXT").read_bytes() == b"case twin"
    assert (out_dir / "dir" / "nested.txt").read_bytes() == b"nested"
    assert not (tmp_path / "escape").exists()
    assert sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*")) == [
        "Fine.TXT",
        "dir",
        "dir/nested.txt",
    ]

    code, _, err = run("--vault", vault, "restore", "latest", "--to", str(tmp_path / "human"))
    assert code == 1
    assert "not restored" in err and "a/../escape" in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--vault", "v"],
        ["--vault", "v", "frobnicate"],
        ["--vault", "v", "backup"],
        ["--vault", "v", "restore", "latest"],
        ["--vault", "v", "ls"],
        ["--vault", "v", "init", "--encryption", "rot13"],
        ["--vault", "v", "init", "--compression-level", "99"],
        ["--vault", "v", "check", "--no-such-flag"],
    ],
)
def test_bad_usage_exits_2(aws: None, run: Run, argv: list[str]) -> None:
    code, out, err = run(*argv)
    assert code == 2
    assert out == ""
    assert "usage:" in err or "error" in err


def test_no_vault_given_exits_2(aws: None, run: Run) -> None:
    code, _out, err = run("list")
    assert code == 2
    assert "no vault given" in err
    assert "VAULTLINE_VAULT" in err


def test_malformed_tag_exits_2(tmp_path: Path, run: Run) -> None:
    vault = str(tmp_path / "vault")
    run("--vault", vault, "init")
    code, _, err = run("--vault", vault, "backup", str(tmp_path), "--tag", "novalue")
    assert code == 2
    assert "KEY=VALUE" in err


def test_missing_vault_exits_1_with_a_hint(tmp_path: Path, run: Run) -> None:
    code, _, err = run("--vault", str(tmp_path / "nothing"), "list")
    assert code == 1
    assert "vaultline init" in err
