"""Choosing, probing and assessing builder images: the pure parts (no engine)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from longcert import image
from longcert.errors import ImageError
from longcert.versions import KubeVersion, go_key, go_minor, go_policies, go_policy
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


def _gos(found: image.StandIns) -> list[str]:
    return [go for _, go in found.allowed]


def test_stand_ins_nearest_first_up_to_the_ceiling() -> None:
    names = ["golang:1.24.11", "golang:1.21.13", "golang:1.21.7-old", "golang:1.27.1",
             "golang:latest", "other/golang:1.22.10", "golang:1.20.14", "golang:1.21.9",
             "golang:1.22.5", "golang:1.22.8", "golang:1.22.12"]
    floor_rule = go_policy(KubeVersion.parse("v1.28.7"))  # ceiling 1.22.8
    found = image.stand_ins(names, "golang:{go_version}", "1.21.7", floor_rule, "1.20")
    # same minor first (newest patch), then the next minor up (newest patch first), never an
    # older Go and never one above the minor's ceiling
    assert _gos(found) == ["1.21.13", "1.21.9", "1.22.8", "1.22.5"]
    assert found.passed_over == (
        "golang:1.20.14: older than the tree's Go 1.21.7",
        "golang:1.22.12, golang:1.24.11, golang:1.27.1: newer than v1.28's ceiling Go 1.22.8 "
        "(v1.28.15 kubeadm (go1.22.8, #128129))",
    )
    below_floor = image.stand_ins(["golang:1.21.13"], "golang:{go_version}", "1.20.3",
                                  floor_rule, "1.21")
    assert below_floor.passed_over == ()  # 1.21.13 meets the floor and is newer: allowed
    assert _gos(below_floor) == ["1.21.13"]
    assert image.stand_ins(["golang:1.20.14"], "golang:{go_version}", "1.20.3", floor_rule,
                           "1.21").passed_over == (
        "golang:1.20.14: older than go.mod's go line 1.21",)

    own = go_policy(KubeVersion.parse("v1.16.15"))  # rule own, ceiling 1.13.15
    names_old = ["golang:1.12.17", "golang:1.13.15", "golang:1.24.11"]
    own_found = image.stand_ins(names_old, "golang:{go_version}", "1.12.9", own, "1.12")
    assert _gos(own_found) == ["1.12.17"]
    assert own_found.passed_over[0].startswith("golang:1.13.15, golang:1.24.11: not Go 1.12 (")

    # v1.9's ceiling is its own Go: nothing newer stands in, and each is said why
    gopath = go_policy(KubeVersion.parse("v1.9.4"))
    old = image.stand_ins(names_old, "golang:{go_version}", "1.9.3", gopath, None)
    assert old.allowed == ()
    assert old.passed_over == ("golang:1.12.17, golang:1.13.15, golang:1.24.11: newer than "
                               "v1.9's ceiling Go 1.9.3 (v1.9.11 binary (go1.9.3))",)

    assert image.stand_ins(names, "golang:1.24.11", "1.21.7", floor_rule, None).allowed == ()
    mirror = image.stand_ins(["m.local/go:1.22.8-x"], "m.local/go:{go_version}-x",
                             "1.21.7", floor_rule, None)
    assert mirror.allowed == (("m.local/go:1.22.8-x", "1.22.8"),)


def test_stand_ins_skip_a_go_the_trees_vendored_code_crashes_on() -> None:
    v122 = go_policy(KubeVersion.parse("v1.22.15"))  # ceiling 1.16.15

    def breaks(go: str) -> list[str]:
        return ["github.com/example/x v1.0.1 breaks on Go 1.16.10 and newer: why"] if (
            go_key(go) >= go_key("1.16.10")) else []

    found = image.stand_ins(["golang:1.16.15", "golang:1.16.8"], "golang:{go_version}",
                            "1.16.6", v122, "1.16", breaks)
    assert _gos(found) == ["1.16.8"]
    assert found.passed_over == (
        "golang:1.16.15: github.com/example/x v1.0.1 breaks on Go 1.16.10 and newer: why",)


def test_every_minor_refuses_what_is_above_its_ceiling() -> None:
    for minor, policy in go_policies().items():
        assert policy.ceiling, minor
        above = f"{go_minor(policy.ceiling)}.{go_key(policy.ceiling)[2] + 1}"
        # a tree of the minor's last patch release asks for the ceiling itself
        assert "ceiling" in policy.refusal(above, policy.ceiling, None), minor
        if policy.rule != "own" or go_minor(policy.ceiling) == go_minor(policy.upstream_go):
            assert policy.refusal(policy.ceiling, policy.upstream_go, None) == "", minor


def test_builder_image_command() -> None:
    assert image.builder_image_command("golang:{go_version}", "1.12.10") == (
        "longcert builder-image --go-version 1.12.10")
    assert image.builder_image_command("stock/golang:{go_version}", "1.21.7") == (
        "longcert builder-image --go-version 1.21.7 --tag stock/golang:1.21.7")
