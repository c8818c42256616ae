"""Running the dry run (needs the engine): ``renew-check`` (:func:`check`) copies the directory,
runs the renewal's commands on the copy in a container with no network, judges every
certificate before against after, prints the table and fails closed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from longcert import container, runs, userfiles, verify
from longcert.ca import checksums
from longcert.errors import ConfigError, VerifyError
from longcert.renewcheck.certs import Seen, inventory
from longcert.renewcheck.plan import (
    derived_settings,
    pki_version,
    plan_for,
    render_config,
    renew_argv,
    with_init_document,
)
from longcert.renewcheck.report import HEADER, RenewReport, report_dict, report_rows
from longcert.renewcheck.verdict import judge
from longcert.settings import parse_years
from longcert.versions import KubeVersion

ASIDE = "renew-check-aside"  # scratch directory (outside the copy) for files moved aside


def binary_platform(binary: Path) -> tuple[str, str]:
    """:func:`longcert.verify.file_platform` of ``--binary`` (its first bytes, never the whole
    of it); a file that cannot be read is a ConfigError."""
    try:
        return verify.file_platform(binary)
    except OSError as exc:
        raise ConfigError(f"--binary {binary}: {exc.strerror or exc}") from None


def asked_years(years: str | None, binary: Path) -> int:
    """--years, else the leaf validity in the manifest.json of the build the binary is in."""
    if years is not None:
        return parse_years(years, "years")
    manifest = binary.parent / "manifest.json"
    try:
        text = userfiles.read_text(manifest, limit=userfiles.MAX_MANIFEST_BYTES,
                                   what="manifest.json")
        return int(json.loads(text)["validity"]["leaf_years"])
    except (ConfigError, ValueError, KeyError, TypeError):
        raise ConfigError("--years is required",
                          "the leaf validity the renewed certificates must have") from None


def _move_aside(kube: Path, aside: Path, names: Iterable[str]) -> None:
    """Move the files a phase would otherwise keep ("Using existing ...") out of the copy."""
    for name in names:
        source = kube / name
        if source.exists():
            target = aside / name
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)


def check(
    binary: str | None,
    etc: str | None,
    years: str | None,
    *,
    config: str | None = None,
    image: str | None = None,
    json_path: str | None = None,
    now: datetime | None = None,
) -> RenewReport:
    """`invoke renew-check`: the dry run; prints the table, raises VerifyError on failure."""
    if not binary:
        raise ConfigError("--binary is required", "the patched kubeadm to renew with")
    binary_path = Path(binary)
    if not binary_path.is_file():
        raise ConfigError(f"--binary {binary!r} is not a file")
    if not etc:
        raise ConfigError("--etc is required", "a copy of a control-plane node's /etc/kubernetes")
    root = Path(etc)
    if not (root / "pki" / "ca.crt").is_file():
        raise ConfigError(f"--etc {etc} has no pki/ca.crt",
                          "point it at a copy of a kubeadm control-plane node's /etc/kubernetes")
    config_text = userfiles.read_text(Path(config), limit=userfiles.MAX_MANIFEST_BYTES,
                                      what="--config") if config else None
    if config and not config_text:
        raise ConfigError(f"--config {config} is empty")
    leaf_years = asked_years(years, binary_path)
    version, version_from = pki_version(root, config_text)
    platform, header = binary_platform(binary_path)
    if not platform.startswith("linux/"):
        raise ConfigError(f"--binary {binary} cannot run here ({header or 'unknown format'})",
                          "renew-check needs a linux kubeadm")
    prefix, extra_mounts, _ = verify._executor(platform)
    sums = checksums(root, "--etc file")
    before, notes = inventory(root)
    report = _run(binary_path, root, version, version_from, leaf_years, config_text, before,
                  notes, verify.resolve_run_image(image), prefix, extra_mounts, now)
    if checksums(root, "--etc file") != sums:
        raise VerifyError(f"--etc {etc} changed during the dry run")  # never: only a copy ran
    from longcert.progress import Reporter

    reporter = Reporter()
    moment = now or datetime.now(UTC)
    for note in report.notes:
        reporter.say(f"note: {note}")
    reporter.summary(
        f"renew-check of {etc} (Kubernetes {report.pki_version}, from {report.pki_version_from})"
        f" with kubeadm {report.binary_version}, leaves asked {leaf_years}y: "
        + ("passed" if report.passed else "FAILED"),
        report_rows(report, moment),
        HEADER,
    )
    if json_path:
        Path(json_path).write_text(json.dumps(report_dict(report), indent=2) + "\n")
    failures = report.failures()
    if failures:
        raise VerifyError(f"renew-check of {etc} failed for {len(failures)} item(s):\n  "
                          + "\n  ".join(failures))
    return report


def _run(
    binary: Path,
    root: Path,
    version: KubeVersion,
    version_from: str,
    leaf_years: int,
    config_text: str | None,
    before: dict[str, Seen],
    notes: list[str],
    image: str,
    prefix: list[str],
    extra_mounts: list[container.BindMount],
    now: datetime | None,
) -> RenewReport:
    client = container.connect()
    with tempfile.TemporaryDirectory(prefix=runs.tagged("longcert-renew-check-")) as scratch:
        work = Path(scratch)
        kube, bin_dir, config_dir, aside = (work / "etc", work / "bin", work / "config",
                                            work / ASIDE)
        shutil.copytree(root, kube, symlinks=True)
        bin_dir.mkdir()
        shutil.copyfile(binary, bin_dir / "kubeadm")
        (bin_dir / "kubeadm").chmod(0o755)
        config_dir.mkdir()
        mounts = [
            container.BindMount(verify.KUBERNETES_DIR, str(kube)),
            container.BindMount(verify.CONFIG_MOUNT, str(config_dir), read_only=True),
            container.BindMount(verify.BIN_MOUNT, str(bin_dir), read_only=True),
            *extra_mounts,
        ]
        # the binary may come from anywhere: never root in its container, no capabilities
        sandbox = container.sandbox()
        sandbox.give(kube)
        user = sandbox.user
        box = container.BuildContainer(client, image, mounts=mounts, user=user,
                                       labels={"org.longcert.purpose": "renew-check"},
                                       limits=container.Limits().unprivileged())
        commands: list[str] = []
        with box:
            code, output = box.capture([*prefix, f"{verify.BIN_MOUNT}/kubeadm", "version",
                                        "-o", "json"], user=user)
            reported = verify.reported_version(output) if code == 0 else ""
            try:
                binary_version = KubeVersion.parse(reported)
            except ConfigError:
                raise ConfigError(f"--binary {binary} is not a kubeadm that reports its version "
                                  f"(`kubeadm version` gave {reported or 'nothing'!r})") from None
            if (binary_version.major, binary_version.minor) != (version.major, version.minor):
                raise ConfigError(
                    f"--etc {root} is a v{version.major}.{version.minor} cluster ({version.tag}, "
                    f"from {version_from}) but the binary is kubeadm {binary_version.tag}",
                    f"renew with a patched kubeadm of v{version.major}.{version.minor}; "
                    "kubeadm manages only the PKI of its own minor",
                )
            if config_text is None:
                node = derived_settings(before, root)
                text = render_config(binary_version, node, stored_periods=True)
                if verify.has_validity_config(binary_version):
                    notes.append(
                        "no --config: assuming the cluster's kubeadm-config ConfigMap stores "
                        f"certificateValidityPeriod: {verify.STORED_LEAF_HOURS}h, as kubeadm "
                        "writes it from v1.31 (pass --config with its ClusterConfiguration "
                        "after editing it, or renew with a --pin-validity build)")
            else:
                text = config_text
                if "pki/apiserver.crt" in before:
                    text = with_init_document(config_text, binary_version,
                                              derived_settings(before, root))
            (config_dir / "kubeadm.yaml").write_text(text)
            plan = plan_for(binary_version, before)
            for step in plan.steps:
                if step.aside:
                    _move_aside(kube, aside, step.aside)
                    commands.append(f"(move {' '.join(step.aside)} aside)")
                argv = renew_argv(step)
                commands.append(" ".join(["kubeadm", *argv[1:]]))
                code, output = box.capture([*prefix, *argv], user=user)
                if code != 0:
                    last = (output.strip().splitlines() or ["(no output)"])[-1]
                    raise VerifyError(f"`kubeadm {' '.join(argv[1:5])}` failed on the copy "
                                      f"(exit {code}): {last}")
        after, after_notes = inventory(kube)
    moment = now or datetime.now(UTC)
    rows = judge(before, after, plan.renewed, leaf_years, moment)
    return RenewReport(str(root), binary_version.tag, version.tag, version_from, leaf_years,
                       tuple(commands), tuple(rows), (),
                       tuple(notes + [n for n in after_notes if n not in notes]))
