"""The kit on disk: every planned file of one build's kit (:func:`plan_kit`), written to
``builds/<id>/kit/`` through a temporary directory and a rename, and the reproducible archive
beside the binaries; :func:`make_kit` is `invoke kit`."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from longcert import runs, verify
from longcert.errors import ConfigError, PublishError
from longcert.kit.facts import facts_for
from longcert.kit.inputs import (
    KitInputs,
    check_image_repository,
    check_install_path,
    inputs_from_build,
)
from longcert.kit.readme import readme
from longcert.kit.render import (
    cluster_configuration,
    install_script,
    kubeadm_config_patch,
    kubeadm_config_script,
    kubelet_settings,
    kubespray_snippet,
    rbac_manifest,
    renew_script,
)
from longcert.package import KIT_ARCHIVE, record_kit

KIT_DIR = "kit"


@dataclass(frozen=True)
class KitFile:
    """One planned file of the kit."""

    name: str
    text: str
    executable: bool = False


def plan_kit(inputs: KitInputs) -> list[KitFile]:
    """Every file of the kit, in the order the README lists them."""
    facts = facts_for(inputs.version, inputs.config_api or None)
    kubelet = kubelet_settings(facts, inputs.serving_rotation)
    files = [
        KitFile("install.sh", install_script(inputs), executable=True),
        KitFile("renew.sh", renew_script(inputs, facts), executable=True),
        KitFile(
            "cluster-configuration.yaml",
            "# kubeadm config for this version: kubeadm init --config / upgrades\n"
            + yaml.safe_dump(cluster_configuration(inputs, facts), sort_keys=False),
        ),
        *([KitFile(*kubelet)] if kubelet else []),
        KitFile("rbac.yaml", rbac_manifest(facts, inputs.serving_rotation)),
        KitFile("kubespray.yml", kubespray_snippet(inputs, facts)),
    ]
    files.append(KitFile("kubeadm-config.sh", kubeadm_config_script(inputs, facts),
                         executable=True))
    if facts.validity_fields:
        files.append(KitFile("kubeadm-config-patch.yaml", kubeadm_config_patch(inputs)))
    if inputs.image_repository and inputs.images:
        files.append(KitFile("images.txt", "\n".join(inputs.images) + "\n"))
    names = ["README.md", *(f.name for f in files)]
    return [KitFile("README.md", readme(inputs, facts, names)), *files]


def write_kit(build_dir: Path, files: list[KitFile]) -> Path:
    """Write ``files`` to ``build_dir/kit`` through a temporary directory renamed into place (an
    existing kit is replaced only once the new one is complete). Temporary names carry the run
    id and the build directory is noted with the run, so a sweep after a kill -9 removes them
    (and puts the old kit back when the kill fell between its two renames)."""
    target = build_dir / KIT_DIR
    runs.note_builds_dir(build_dir)
    archive_temp = runs.temp_path(build_dir / KIT_ARCHIVE)
    try:
        staging = Path(tempfile.mkdtemp(prefix=runs.tagged(".kit-"), dir=build_dir))
    except OSError as exc:
        raise PublishError(f"cannot write the kit into {build_dir}: {exc.strerror or exc}") from exc
    try:
        for item in files:
            path = staging / item.name
            path.write_text(item.text)
            path.chmod(0o755 if item.executable else 0o644)
        staging.chmod(0o755)
        archive = staging / KIT_ARCHIVE  # moved out before the directory takes the kit's name
        archive.write_bytes(kit_archive(files))
        archive.chmod(0o644)
        with runs.signals_deferred():
            archive.rename(archive_temp)
            if target.exists():
                old = runs.aside_path(target)  # the sweep restores it if "kit" is missing
                target.rename(old)
                staging.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                staging.rename(target)
            os.replace(archive_temp, build_dir / KIT_ARCHIVE)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        archive_temp.unlink(missing_ok=True)
        raise
    return target


def kit_archive(files: list[KitFile]) -> bytes:
    """``kit/<file>`` for every file, as a gzipped tar that is the same for the same kit."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in sorted(files, key=lambda f: f.name):
            data = item.text.encode()
            info = tarfile.TarInfo(f"{KIT_DIR}/{item.name}")
            info.size, info.mtime = len(data), 0
            info.mode = 0o755 if item.executable else 0o644
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def make_kit(
    build_path: str | None,
    image_repository: str | None = None,
    install_path: str | None = None,
    *,
    image: str | None = None,
    serving_rotation: bool = False,
) -> Path:
    """`invoke kit`: load and check the build, list its images if asked, write its kit."""
    from longcert import publish

    if not build_path:
        raise ConfigError("--build is required", "give builds/<id> as written by `invoke build`")
    registry = check_image_repository(image_repository)
    target = check_install_path(install_path)
    try:
        # a kit written again (even one a stop left half recorded) is not checked: it is
        # replaced, and recorded anew
        build = publish.load_build(Path(build_path), kit_rewrite=True)
    except PublishError as err:
        # the same exit code as publish for the same build: it is not one to roll out
        raise PublishError(
            f"no kit for {build_path}: {err.message}",
            "a kit is written only for a verified build directory made by `longcert build`",
        ) from None
    inputs = inputs_from_build(build, registry, target, serving_rotation)
    facts = facts_for(inputs.version, inputs.config_api or None)
    if registry and facts.images_list and verify.NATIVE_PLATFORM in inputs.binaries:
        config = yaml.safe_dump(cluster_configuration(inputs, facts), sort_keys=False)
        listed = verify.list_images(
            build.path / "kubeadm-linux-amd64",
            config,
            image=verify.resolve_run_image(image),
        )
        inputs = replace(inputs, images=tuple(listed))
    path = write_kit(build.path, plan_kit(inputs))
    # published only as manifest.json and SHA256SUMS record it
    record_kit(build.path, {item.name: item.sha256 for item in build.files})
    print(f"kit for {inputs.tag} written to {path}")
    for name in sorted(p.name for p in path.iterdir()):
        print(f"  {name}")
    return path
