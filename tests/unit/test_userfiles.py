"""Files from user-given places: regular files only, bounded, no symlink out (issue 22)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from longcert import patching, settings, userfiles
from longcert.errors import ConfigError

BUNDLED = patching.PATCHES_DIR


def _patches(tmp_path: Path) -> Path:
    directory = tmp_path / "patches"
    directory.mkdir()
    for source in BUNDLED.glob("*.yaml"):
        (directory / source.name).write_text(source.read_text())
    return directory


def _refused(directory: Path, message: str) -> None:
    done: list[BaseException] = []

    def load() -> None:
        try:
            patching.load_patch_sets(directory)
        except BaseException as exc:  # handed to the test thread
            done.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "reading the patch sets hung"
    assert done and isinstance(done[0], ConfigError), done
    text = str(done[0])
    assert message in text and "\n" not in text and len(text) < 400, text


def test_a_fifo_in_patches_dir_is_refused_not_waited_on(tmp_path: Path) -> None:
    directory = _patches(tmp_path)
    os.mkfifo(directory / "z-fifo.yaml")
    _refused(directory, "is a FIFO, not a regular file")


def test_a_link_to_dev_zero_is_refused_not_read(tmp_path: Path) -> None:
    directory = _patches(tmp_path)
    (directory / "zero.yaml").symlink_to("/dev/zero")
    _refused(directory, "leads outside")
    inside = tmp_path / "patches" / "sub"
    inside.mkdir()
    (directory / "zero.yaml").unlink()
    os.symlink("/dev/zero", inside / "dev")
    (directory / "zero.yaml").symlink_to(inside / "dev")
    _refused(directory, "leads outside")


def test_a_huge_patch_set_is_refused_by_its_size(tmp_path: Path) -> None:
    directory = _patches(tmp_path)
    with (directory / "big.yaml").open("wb") as handle:
        handle.truncate(200 << 20)  # 200 MB, sparse: the size alone refuses it
    _refused(directory, f"is {200 << 20} bytes, more than the {userfiles.MAX_PATCH_SET_BYTES}")


def test_a_symlink_loop_is_one_short_line(tmp_path: Path) -> None:
    directory = _patches(tmp_path)
    (directory / "loop.yaml").symlink_to(directory / "loop2.yaml")
    (directory / "loop2.yaml").symlink_to(directory / "loop.yaml")
    _refused(directory, "loop")


def test_a_symlink_inside_the_directory_is_read(tmp_path: Path) -> None:
    directory = _patches(tmp_path)
    first = sorted(directory.glob("*.yaml"))[0]
    first.rename(directory / "real.txt")
    first.symlink_to(directory / "real.txt")
    assert len(patching.load_patch_sets(directory)) == len(list(BUNDLED.glob("*.yaml")))


def test_a_settings_file_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "longcert.yaml")
    with pytest.raises(ConfigError, match="is a FIFO, not a regular file"):
        settings.load({}, environ={"HOME": str(tmp_path / "home")}, cwd=tmp_path)


def test_read_bytes_bounds_what_it_reads(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert userfiles.read_bytes(path, limit=100, what="file") == b"x" * 100
    with pytest.raises(ConfigError, match="is 100 bytes, more than the 99 a file may be"):
        userfiles.read_bytes(path, limit=99, what="file")
