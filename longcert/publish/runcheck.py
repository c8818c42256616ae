"""Before anything leaves the machine, each binary runs: ``kubeadm version -o short`` must print
exactly the manifest's Kubernetes tag (issue 20). The sha256 and header checks of
:func:`~longcert.publish.build.load_build` prove the files are the ones the build wrote; only
running them proves they are the kubeadm it says, and that they run at all.

Linux binaries run the way verify runs them: in a network-less container with no capability,
as an unprivileged user, foreign architectures through QEMU. Windows and macOS binaries cannot
run here: their executable header is what was checked. A binary that passed is remembered by
its sha256 in the cache directory, so publishing the same build again (to another target, or
after a broken upload) does not start a container for it; a failure is never remembered.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from longcert import container, runs
from longcert.build import sha256_file
from longcert.errors import EngineError, PublishError, VerifyError
from longcert.publish.build import Build, BuildFile
from longcert.verify.plan import BIN_MOUNT
from longcert.verify.run import DEFAULT_RUN_IMAGE, go_crash
from longcert.verify.run import _executor as executor

ProgressFn = Callable[[str], None]

NO_RUN_CHECK_FLAG = "--no-run-check"
# Where passed checks are remembered, under the cache directory: one file per binary sha256.
RUN_CHECKS_DIR = "run-checks"


def check_binaries_run(
    build: Build, *, image: str | None, cache_dir: Path | None, progress: ProgressFn
) -> None:
    """Run every Linux binary of ``build`` and refuse (PublishError) unless each prints the
    manifest's tag; no engine is an EngineError saying how to go on. Nothing is uploaded yet."""
    to_run: list[BuildFile] = []
    for binary in build.binaries:
        if not binary.platform.startswith("linux/"):
            progress(f"{binary.name}: a {binary.platform} binary does not run here; its "
                     "sha256 and executable header were checked")
        elif _passed_before(cache_dir, binary, build.tag):
            progress(f"{binary.name} reported {build.tag} when it ran before (same sha256 "
                     f"{binary.sha256[:16]}): not run again")
        else:
            to_run.append(binary)
    if not to_run:
        return
    for binary, (printed, problem) in _run_versions(to_run, image, progress).items():
        if printed != build.tag:
            said = problem or f"printed {printed[:80]!r}"
            raise PublishError(
                f"{build.path}: {binary.name} is not kubeadm {build.tag}: "
                f"`{binary.name} version -o short` {said}",
                "only the binary the build made and verified is published; rebuild it",
            )
        progress(f"{binary.name} runs and reports {build.tag}")
        _remember(cache_dir, binary, build.tag)


def _run_versions(
    binaries: list[BuildFile], image: str | None, progress: ProgressFn
) -> dict[BuildFile, tuple[str, str]]:
    """Each binary's ``version -o short``, as :func:`_outcome` tells it."""
    try:
        client = container.connect()
    except EngineError as err:
        raise EngineError(
            f"publish runs each Linux binary (`kubeadm version`) before uploading, and "
            f"{err.message}",
            f"start dockerd or point DOCKER_HOST at an engine; or pass {NO_RUN_CHECK_FLAG} to "
            "publish without running them (the sha256 and header checks still apply)",
        ) from None
    prefixes: dict[BuildFile, list[str]] = {}
    mounts: list[container.BindMount] = []
    for binary in binaries:
        prefixes[binary], mount = _emulator(binary)
        if mount is not None and mount not in mounts:
            mounts.append(mount)
    run_image = container.runnable_image(client, image or DEFAULT_RUN_IMAGE, progress)
    results: dict[BuildFile, tuple[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix=runs.tagged("longcert-publish-check-")) as scratch:
        bin_dir = Path(scratch) / "bin"
        bin_dir.mkdir()
        for binary in binaries:
            copy = bin_dir / binary.name
            shutil.copyfile(binary.path, copy)
            # the bytes run must be the bytes checked (and then uploaded)
            if sha256_file(copy) != binary.sha256:
                raise PublishError(f"{binary.path} changed while publish checked it",
                                   "leave the build alone while it is published")
            copy.chmod(0o755)
        sandbox = container.sandbox()
        labels = {"org.longcert.purpose": "publish-check"}
        box = container.BuildContainer(
            client, run_image, labels=labels, user=sandbox.user,
            mounts=[container.BindMount(BIN_MOUNT, str(bin_dir), read_only=True), *mounts],
            limits=container.Limits().unprivileged(),
        )
        with box:
            for binary in binaries:
                code, output = box.capture(
                    [*prefixes[binary], f"{BIN_MOUNT}/{binary.name}", "version", "-o", "short"],
                    user=sandbox.user,
                )
                results[binary] = _outcome(code, output)
    return results


def _outcome(code: int, output: str) -> tuple[str, str]:
    """(the one line a run that exited 0 printed, ""), or ("", what went wrong instead)."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if code == 0 and len(lines) == 1:
        return lines[0], ""
    crash = go_crash(output)
    if crash:
        return "", f"crashed in the Go runtime: {crash[:120]}"
    if code == 0:
        return "", f"printed {len(lines)} lines, not one tag"
    # a shell's 128+N: killed by signal N (SIGILL, SIGSEGV: not a program for this machine)
    died = f", killed by signal {code - 128}" if 128 < code < 160 else ""
    return "", f"failed (exit {code}{died}): {(lines or ['(no output)'])[-1][:120]}"


def _emulator(binary: BuildFile) -> tuple[list[str], container.BindMount | None]:
    """The argv prefix and mount that run ``binary`` here, as verify runs it (natively for
    linux/amd64, else its architecture's QEMU user-mode emulator)."""
    try:
        prefix, mounts, _ = executor(binary.platform)
    except VerifyError as err:
        raise PublishError(
            f"{binary.name}: {err.message}",
            f"apt-get install qemu-user-static; or pass {NO_RUN_CHECK_FLAG} to publish without "
            "running the binaries",
        ) from None
    return prefix, (mounts[0] if mounts else None)


def _record_path(cache_dir: Path, binary: BuildFile) -> Path:
    return cache_dir / RUN_CHECKS_DIR / f"{binary.sha256}.json"


def _passed_before(cache_dir: Path | None, binary: BuildFile, tag: str) -> bool:
    """Whether this very binary (by sha256) ran and printed ``tag`` before."""
    if cache_dir is None:
        return False
    try:
        record = json.loads(_record_path(cache_dir, binary).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("reported") == tag and record.get(
        "platform") == binary.platform


def _remember(cache_dir: Path | None, binary: BuildFile, tag: str) -> None:
    """Remember a passed check; a cache that cannot be written only costs a run next time."""
    if cache_dir is None:
        return
    path = _record_path(cache_dir, binary)
    record = {"sha256": binary.sha256, "platform": binary.platform, "reported": tag}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        runs.write_atomic(path, json.dumps(record) + "\n")
    except OSError:
        pass
