"""`verify` without --version takes what the binary must be from its release's manifest.json,
and only when the binary is the file the manifest lists (issue 20: a v1.28.7 binary swapped
into a v1.33.7 release passed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from longcert import settings, verify
from longcert.errors import ConfigError, VerifyError
from tests.standin_build import make_build


def test_the_manifest_says_the_tag_and_validities(tmp_path: Path) -> None:
    out = make_build(tmp_path / "builds", tag="v1.33.7", years=7, ca_years=20)
    release = verify.from_release(out / "kubeadm-linux-amd64")
    assert release is not None
    assert (release.tag, release.leaf_years, release.ca_years) == ("v1.33.7", 7, 20)
    conf = settings.load({}, environ={})
    assert verify.expectation(str(out / "kubeadm-linux-amd64"), None, conf, pinned=False) == (
        "v1.33.7", 7, 20, False)
    given = settings.load({"years": "3", "ca_years": "5"}, environ={})
    assert verify.expectation(str(out / "kubeadm-linux-amd64"), "v1.33.7", given,
                              pinned=False)[1:3] == (3, 5)  # what is given wins


def test_a_binary_swapped_into_a_release_is_refused(tmp_path: Path) -> None:
    release = make_build(tmp_path / "a", tag="v1.33.7")
    other = make_build(tmp_path / "b", tag="v1.28.7")
    shutil.copyfile(other / "kubeadm-linux-amd64", release / "kubeadm-linux-amd64")
    with pytest.raises(VerifyError, match="is not the kubeadm-linux-amd64 its release's"):
        verify.required_version(release / "kubeadm-linux-amd64", None)


def test_without_a_manifest_the_version_is_required(tmp_path: Path) -> None:
    binary = tmp_path / "kubeadm"
    binary.write_bytes(b"\x7fELF")
    with pytest.raises(ConfigError, match="--version is required"):
        verify.required_version(binary, None)
    assert verify.required_version(binary, "v1.33.7") == ("v1.33.7", None)


def test_a_binary_the_manifest_does_not_list_is_refused(tmp_path: Path) -> None:
    out = make_build(tmp_path / "builds")
    stranger = out / "kubeadm-custom"
    stranger.write_bytes(b"\x7fELF something else")
    with pytest.raises(VerifyError, match=r"is not listed in the manifest\.json beside it"):
        verify.required_version(stranger, None)
    (out / "manifest.json").write_text(json.dumps(["not", "a", "manifest"]))
    with pytest.raises(ConfigError, match="not a longcert manifest"):
        verify.required_version(out / "kubeadm-linux-amd64", None)
