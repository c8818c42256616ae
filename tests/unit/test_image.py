"""Choosing, probing and assessing builder images: the pure parts (no engine)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from longcert import image
from longcert.errors import ImageError
from longcert.versions import GoPolicy, KubeVersion, go_policy
from tests.unit.test_build import STOCK_PROBE


def probe(text: str = STOCK_PROBE, platform: str = "linux/amd64") -> image.ImageProbe:
    return image.parse_probe("golang:1.24.11", "sha256:" + "2" * 64, platform, text)


def test_parse_probe_of_an_official_shaped_image() -> None:
    found = probe()
    assert found.go_version == "1.24.11"
    assert found.env("GOROOT") == "/usr/local/go" and found.env("GOPATH") == "/go"
    assert found.missing() == ("rsync",)
    assert "lacks rsync" in found.summary()
    assert image.ImageProbe.from_dict(found.to_dict()) == found


def test_missing_rsync_is_supplied_as_a_read_only_helper(tmp_path: Path) -> None:
    toolbox = image.assess(probe(), engine_platform="linux/amd64")
    assert toolbox.shims == ("rsync",)
    assert toolbox.path.split(":")[-1] == image.TOOLS_DIR  # after the image's own tools
    assert toolbox.path.startswith("/go/bin:/usr/local/go/bin:")
    assert "rsync" in toolbox.supplied[0]
    image.write_shims(toolbox, tmp_path)
    assert (tmp_path / "tools" / "rsync").stat().st_mode & 0o111


def test_an_image_with_rsync_gets_nothing() -> None:
    full = STOCK_PROBE.replace("tool rsync -", "tool rsync /usr/bin/rsync")
    assert image.assess(probe(full), engine_platform="linux/amd64") == image.Toolbox((), (), "")


def test_go_off_path_is_put_on_path() -> None:
    text = STOCK_PROBE.replace("path /go/bin:/usr/local/go/bin:", "path ")
    toolbox = image.assess(probe(text), engine_platform="linux/amd64")
    assert "/usr/local/go/bin" in toolbox.path.split(":")
    assert any("on PATH" in s for s in toolbox.supplied)


NO_GO = STOCK_PROBE.split("gobin")[0] + "gobin -\n"


@pytest.mark.parametrize(("text", "platform", "floor", "message"), [
    (STOCK_PROBE.replace("tool make /usr/bin/make", "tool make -"), "linux/amd64", None,
     "lacks make (upstream's hack scripts need it)"),
    (STOCK_PROBE.replace("tool bash /bin/bash", "tool bash -"), "linux/amd64", None, "bash"),
    (NO_GO, "linux/amd64", None, "a Go toolchain that runs"),
    (STOCK_PROBE, "linux/arm64", None, "an image for linux/amd64 (it is linux/arm64)"),
    (STOCK_PROBE, "linux/amd64", "1.25.0", "Go 1.25.0 or newer, which go.mod asks for"),
])
def test_what_cannot_be_made_up_for(text: str, platform: str, floor: str | None,
                                    message: str) -> None:
    with pytest.raises(ImageError, match=r"golang:1\.24\.11 cannot build kubeadm") as caught:
        image.assess(probe(text, platform), engine_platform="linux/amd64", floor=floor)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_rsync_helper_copies_like_rsync_pc(tmp_path: Path) -> None:
    helper = tmp_path / "rsync"
    helper.write_text(image.RSYNC_SHIM)
    helper.chmod(0o755)
    src = tmp_path / "kubeadm"
    src.write_bytes(b"\x7fELF binary")
    src.chmod(0o751)
    dest = tmp_path / "out"
    dest.mkdir()
    subprocess.run(["sh", str(helper), "-pc", str(src), str(dest)], check=True)
    assert (dest / "kubeadm").read_bytes() == b"\x7fELF binary"
    assert (dest / "kubeadm").stat().st_mode & 0o777 == 0o751
    refused = subprocess.run(["sh", str(helper), "-az", "--delete", str(src), str(dest)],
                             capture_output=True, text=True)
    assert refused.returncode == 1 and "unsupported option -az" in refused.stderr


def test_template_pattern_and_fallback_order() -> None:
    names = ["golang:1.24.11", "golang:1.21.13", "golang:1.21.7-old", "golang:1.27.1",
             "golang:latest", "other/golang:1.22.10", "golang:1.20.14", "golang:1.21.9"]
    floor_rule = go_policy(KubeVersion.parse("v1.28.7"))
    found = image.fallback_candidates(names, "golang:{go_version}", "1.21.7", floor_rule, "1.20")
    # same minor first (newest patch), then the closest newer Go; never an older one
    assert [go for _, go in found] == ["1.21.13", "1.21.9", "1.24.11", "1.27.1"]
    own = GoPolicy("1.16", "1.12.9", "own")
    names_old = ["golang:1.12.17", "golang:1.13.15", "golang:1.24.11"]
    assert [go for _, go in image.fallback_candidates(
        names_old, "golang:{go_version}", "1.12.9", own, "1.12")] == ["1.12.17"]
    gopath = go_policy(KubeVersion.parse("v1.9.4"))
    assert [go for _, go in image.fallback_candidates(
        names_old, "golang:{go_version}", "1.9.3", gopath, None)] == [
        "1.12.17", "1.13.15", "1.24.11"]
    assert image.fallback_candidates(names, "golang:1.24.11", "1.21.7", floor_rule, None) == []
    mirror = image.fallback_candidates(["m.local/go:1.24.11-x"], "m.local/go:{go_version}-x",
                                       "1.21.7", floor_rule, None)
    assert mirror == [("m.local/go:1.24.11-x", "1.24.11")]


def test_builder_image_command() -> None:
    assert image.builder_image_command("golang:{go_version}", "1.12.10") == (
        "invoke builder-image --go 1.12.10")
    assert image.builder_image_command("stock/golang:{go_version}", "1.21.7") == (
        "invoke builder-image --go 1.21.7 --tag stock/golang:1.21.7")
