"""The kit's inputs: what a kit is written from (a verified build and the flags), checked at the
boundary."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from longcert import verify
from longcert.errors import ConfigError
from longcert.versions import KubeVersion

DEFAULT_INSTALL_PATH = "/usr/bin/kubeadm"
# A registry host[:port] with an optional path: what kubeadm's imageRepository takes.
_REGISTRY = re.compile(
    r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
)
_INSTALL_PATH = re.compile(r"/[A-Za-z0-9._/+-]+")


@dataclass(frozen=True)
class KitInputs:
    """What a kit is written from: the build (checked by load_build) and the flags."""

    build_id: str
    tag: str
    leaf_years: int
    ca_years: int
    pinned: bool
    binaries: Mapping[str, str]  # linux platform -> sha256 of kubeadm-linux-<arch>
    config_api: str = ""  # the API the binary printed in verification, "" if unknown
    image_repository: str = ""
    install_path: str = DEFAULT_INSTALL_PATH
    images: tuple[str, ...] = field(default=())  # `kubeadm config images list` output lines
    # Kubelets also request serving certificates from the cluster CA (serverTLSBootstrap), each
    # a CSR someone or an approver must approve; off: they keep their self-signed ones.
    serving_rotation: bool = False

    @property
    def version(self) -> KubeVersion:
        return KubeVersion.parse(self.tag)


def check_image_repository(value: str | None) -> str:
    """``--image-repository``: a registry host[:port][/path], no tag, no scheme."""
    if not value:
        return ""
    if not _REGISTRY.fullmatch(value):
        raise ConfigError(
            f"--image-repository {value!r} is not a registry path",
            "give HOST[:PORT][/PATH] such as registry.example.com/k8s, without a scheme or tag",
        )
    return value


def check_install_path(value: str | None) -> str:
    """``--install-path``: an absolute path without spaces or shell characters."""
    if not value:
        return DEFAULT_INSTALL_PATH
    if not _INSTALL_PATH.fullmatch(value) or "/../" in value + "/" or value.endswith("/"):
        raise ConfigError(
            f"--install-path {value!r} is not an absolute file path",
            "for example /usr/bin/kubeadm or /usr/local/bin/kubeadm",
        )
    return value


def inputs_from_build(
    build: Any, image_repository: str = "", install_path: str = DEFAULT_INSTALL_PATH,
    serving_rotation: bool = False,
) -> KitInputs:
    """KitInputs of a loaded :class:`longcert.publish.Build` (already checked by load_build)."""
    manifest = build.manifest
    pinned = str(manifest.get("config_override", "")).startswith("ignored")
    binaries = {
        f.platform: f.sha256 for f in build.binaries if f.platform.startswith("linux/")
    }
    if not binaries:
        raise ConfigError(
            f"{build.path}: the build has no linux binary, and a kit installs one",
            "build with a linux platform (--platforms linux/amd64)",
        )
    platforms = (manifest.get("verification") or {}).get("platforms") or {}
    native = platforms.get(verify.NATIVE_PLATFORM) or {}
    api = str(native.get("config_api", ""))
    return KitInputs(
        build_id=build.build_id,
        tag=build.tag,
        leaf_years=build.leaf_years,
        ca_years=build.ca_years,
        pinned=pinned,
        binaries=binaries,
        config_api=api if verify.CONFIG_API.fullmatch(api) else "",
        image_repository=image_repository,
        install_path=install_path,
        serving_rotation=serving_rotation,
    )
