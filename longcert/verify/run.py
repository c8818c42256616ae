"""Running the binary: with its platform from its executable header
(:mod:`~longcert.verify.header`), run it (natively or under QEMU) in network-less containers
with a scratch /etc/kubernetes, each scenario in its own container where the cores allow, and
gather every scenario's checks into one :class:`~longcert.verify.report.VerifyReport`
(:func:`verify_binary`); needs the engine. Also the image kubeadm runs in
(:func:`resolve_run_image`) and ``kubeadm config images list`` (:func:`list_images`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from longcert import container, runs
from longcert.errors import ConfigError, VerifyError
from longcert.verify.header import file_platform
from longcert.verify.judge import CA_CERTS, CertCheck, check_directory, key_type_problems
from longcert.verify.plan import (
    BIN_MOUNT,
    CONFIG_MOUNT,
    KUBERNETES_DIR,
    Scenario,
    api_from_defaults,
    can_print_defaults,
    config_api,
    generate_steps,
    kubeadm_config,
    renew_command,
    renewal_checks,
    scenarios,
)
from longcert.verify.report import VerifyReport
from longcert.versions import KubeVersion

# The run_image setting's default (config/defaults.yaml), for callers without settings; the
# Debian base builder-image makes is the fallback when this is neither present nor pullable.
DEFAULT_RUN_IMAGE = "debian:bookworm-slim"
DEFAULT_VERIFY_IMAGE = "longcert/debian-base:bookworm"


def resolve_run_image(image: str | None, progress: LineFn | None = None) -> str:
    """The id of the image verify, renew-check and kit run kubeadm in: ``image`` (the
    run_image setting) when present or pullable, else the local Debian base; a pull or the
    fallback is said through ``progress`` (default: a ``longcert:`` line on stdout)."""
    return container.runnable_image(
        container.connect(), image or DEFAULT_RUN_IMAGE, progress or _say_progress
    )


def _say_progress(line: str) -> None:
    print(f"longcert: {line}", flush=True)


LineFn = Callable[[str], None]


# --- executable headers (pure) ------------------------------------------------------------


QEMU_BINARIES = {
    "arm64": "qemu-aarch64-static",
    "arm": "qemu-arm-static",
    "386": "qemu-i386-static",
    "ppc64le": "qemu-ppc64le-static",
    "s390x": "qemu-s390x-static",
}
NATIVE_PLATFORM = "linux/amd64"


def reported_version(output: str) -> str:
    """gitVersion out of ``kubeadm version -o json``."""
    try:
        return str(json.loads(output)["clientVersion"]["gitVersion"])
    except (ValueError, KeyError, TypeError):
        return ""


# --- running the binary (needs the engine) ------------------------------------------------


def _executor(platform: str) -> tuple[list[str], list[container.BindMount], str]:
    """Argv prefix, extra mounts and a name for running ``platform``'s binary here."""
    if platform == NATIVE_PLATFORM:
        return [], [], "native"
    qemu_name = QEMU_BINARIES.get(platform.split("/")[1], "")
    qemu = shutil.which(qemu_name) if qemu_name else None
    if qemu is None:
        raise VerifyError(
            f"cannot execute the {platform} binary here: {qemu_name or 'no emulator'}"
            " is not installed",
            "apt-get install qemu-user-static",
        )
    target = f"/longcert/qemu/{qemu_name}"
    return [target], [container.BindMount(target, qemu, read_only=True)], qemu_name


def verify_binary(
    binary: Path,
    version: KubeVersion | None,
    leaf_years: int,
    ca_years: int,
    *,
    image: str,
    pinned: bool = False,
    log_path: Path | None = None,
    on_line: LineFn | None = None,
    limits: container.Limits | None = None,
    seed_pki: Path | None = None,
    on_activity: LineFn | None = None,
) -> VerifyReport:
    """Check ``binary``: run it (natively or under qemu) to make the PKI, kubeconfigs and a
    renewal, and check every certificate; darwin/windows get a header check only.

    ``version`` None means: use what the binary reports. The scenarios (:func:`scenarios`) are
    independent and run at once where the cores allow (:func:`scenario_workers`), each in its
    own container and directory; the report, the log and ``on_line`` get them in order, and
    the report (errors included) is the one running them one after the other gives.
    ``seed_pki``: a certificatesDir (CAs of your own) copied into each scenario's pki/ first.
    ``on_activity`` hears which scenarios run ("scenario 2 of 4 (pinned)"), for a status line.
    """
    platform, header = file_platform(binary)
    if not platform:
        raise VerifyError(f"{binary} is not a kubeadm executable: {header}")
    tag = version.tag if version else ""
    if not platform.startswith("linux/"):
        return VerifyReport(tag, platform, "", leaf_years, ca_years, (), (), "", header)
    prefix, extra_mounts, executed_with = _executor(platform)
    client = container.connect()
    with tempfile.TemporaryDirectory(prefix=runs.tagged("longcert-verify-")) as scratch:
        root = Path(scratch)
        bin_dir = root / "bin"
        bin_dir.mkdir()
        shutil.copyfile(binary, bin_dir / "kubeadm")
        (bin_dir / "kubeadm").chmod(0o755)
        labels = {"org.longcert.purpose": "verify", "org.longcert.platform": platform}
        # the binary may come from anywhere: never root in its container, no capabilities
        sandbox = container.sandbox()
        user = sandbox.user
        box_limits = (limits or container.Limits()).unprivileged()

        def open_box(index: int, log: Path | None) -> tuple[container.BuildContainer, _Dirs]:
            """A container with scenario ``index``'s own /etc/kubernetes and config."""
            dirs = _Dirs(root / f"kubernetes-{index}", root / f"config-{index}", sandbox)
            dirs.kube.mkdir()
            dirs.config.mkdir()
            sandbox.give(dirs.kube)
            mounts = [
                container.BindMount(KUBERNETES_DIR, str(dirs.kube)),
                container.BindMount(CONFIG_MOUNT, str(dirs.config), read_only=True),
                container.BindMount(BIN_MOUNT, str(bin_dir), read_only=True),
                *extra_mounts,
            ]
            box = container.BuildContainer(
                client, image, mounts=mounts, labels=labels, log_path=log, limits=box_limits,
                user=user,
            )
            return box, dirs

        problems: list[str] = []
        main, main_dirs = open_box(0, log_path)
        with main as box:
            run = _Runner(box, prefix, user, on_line)
            output = run([f"{BIN_MOUNT}/kubeadm", "version", "-o", "json"], "version", problems)
            reported = reported_version(output or "")
            # no kubeadm version at all (and no Go crash, which a stand-in Go can cause): not
            # kubeadm, whatever version it was expected to be
            if not reported and not any(CRASHED in problem for problem in problems):
                raise VerifyError(
                    f"{binary} is not kubeadm: `{binary.name} version -o json` answered no "
                    "kubeadm version",
                    "pass a kubeadm binary to --binary",
                )
            if version is None:
                try:
                    version = KubeVersion.parse(reported)
                except ConfigError as exc:
                    raise VerifyError(
                        f"{binary} reports version {reported!r}, not a release tag",
                        "pass the tag it was built from with --version",
                    ) from exc
            elif reported != version.tag:
                problems.append(f"kubeadm version reports {reported!r}, expected {version.tag}")
            api, api_source = config_api(version), "table (no `config print init-defaults`)"
            if can_print_defaults(version):
                printed = run(
                    [f"{BIN_MOUNT}/kubeadm", "config", "print", "init-defaults"],
                    "config print init-defaults",
                    problems,
                )
                asked = api_from_defaults(printed or "")
                if asked:
                    api, api_source = asked, "config print init-defaults"
                elif printed is not None:
                    problems.append("`kubeadm config print init-defaults` printed no "
                                    "InitConfiguration with a kubeadm.k8s.io apiVersion")
            plan = [replace(s, seed_pki=seed_pki)
                    for s in scenarios(version, leaf_years, ca_years, pinned)]
            known = version
            workers = scenario_workers(len(plan))
            progress = ScenarioProgress([s.name for s in plan], on_activity)
            if workers <= 1:  # one after the other, in this container, as always
                results: list[ScenarioResult] = []
                for index, scenario in enumerate(plan):
                    with progress.running(index):
                        results.append(_run_scenario(
                            run, main_dirs, known, api, scenario,
                            renew_allowed=not problems and not any(r.problems() for r in results),
                        ))
            else:
                results = _parallel_scenarios(
                    plan, workers, run, main_dirs, open_box, root, log_path, on_line,
                    known, api, renew_allowed=not problems, prefix=prefix, user=user,
                    progress=progress,
                )
    checks, problems, missing = merge_scenarios(problems, results)
    return VerifyReport(
        version.tag,
        platform,
        reported,
        leaf_years,
        ca_years,
        tuple(checks),
        tuple(problems + missing),
        executed_with,
        header,
        api,
        api_source,
    )


CRASHED = "crashed in the Go runtime"


def go_crash(output: str) -> str:
    """The first line of a Go runtime panic or fatal error in ``output`` ("" if none): what a
    kubeadm built with a Go its vendored code does not support prints before its stack trace."""
    for line in output.splitlines():
        text = line.strip()
        if text.startswith(("panic: ", "fatal error: ")):
            return text
    return ""


class ScenarioProgress:
    """Which of a plan's scenarios run and how many are done, told to ``on_activity`` as one
    line ("scenario 2 of 4 (pinned), 3 of 4 (config-8760h) running; 1 done") each time that
    changes; scenarios may run on several threads at once."""

    def __init__(self, names: list[str], on_activity: LineFn | None) -> None:
        self.names = names
        self.on_activity = on_activity
        self.running_now: list[int] = []
        self.done = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def running(self, index: int) -> Iterator[None]:
        self._change(lambda: self.running_now.append(index))
        try:
            yield
        finally:
            self._change(lambda: self._finish(index))

    def _finish(self, index: int) -> None:
        self.running_now.remove(index)
        self.done += 1

    def _change(self, change: Callable[[], None]) -> None:
        with self._lock:
            change()
            line = self.line()
        if self.on_activity is not None:
            self.on_activity(line)

    def line(self) -> str:
        total = len(self.names)
        running = ", ".join(
            f"{i + 1} of {total} ({self.names[i]})" for i in sorted(self.running_now)
        )
        parts = [f"scenario {running} running"] if running else []
        if self.done:
            parts.append(f"{self.done} of {total} done")
        return "; ".join(parts) or f"{total} scenarios"


def scenario_workers(count: int) -> int:
    """How many scenarios run at once: one per core, at most one per scenario."""
    return max(1, min(count, os.cpu_count() or 1))


@dataclass(frozen=True)
class _Dirs:
    """A scenario's host directories: /etc/kubernetes and the config, and who may write the
    first."""

    kube: Path
    config: Path
    sandbox: container.Sandbox


class _Runner:
    """Runs kubeadm commands in one container: the output of a successful command, or None
    and a problem noted in the list given."""

    def __init__(
        self,
        box: container.BuildContainer,
        prefix: list[str],
        user: str,
        on_line: LineFn | None,
    ) -> None:
        self.box, self.prefix, self.user, self.on_line = box, prefix, user, on_line

    def __call__(self, argv: list[str], what: str, problems: list[str]) -> str | None:
        code, output = self.box.capture(
            [*self.prefix, *argv], user=self.user, on_line=self.on_line
        )
        if code == 0:
            return output or "(no output)"
        return self._failed(code, output, what, problems)

    def together(self, commands: list[list[str]], problems: list[str]) -> list[str | None]:
        """Several kubeadm commands at once (one after the other on a single core); each
        named by its words after the binary."""
        if len(commands) == 1 or (os.cpu_count() or 1) < 2:
            return [self(argv, " ".join(argv[1:5]), problems) for argv in commands]
        results = self.box.capture_together(
            [[*self.prefix, *argv] for argv in commands], user=self.user, on_line=self.on_line
        )
        return [
            (output or "(no output)") if code == 0
            else self._failed(code, output, " ".join(argv[1:5]), problems)
            for argv, (code, output) in zip(commands, results, strict=True)
        ]

    @staticmethod
    def _failed(code: int, output: str, what: str, problems: list[str]) -> None:
        crash = go_crash(output)
        if crash:
            problems.append(f"`kubeadm {what}` {CRASHED}: {crash}")
            return None
        last = output.strip().splitlines()[-1:] or ["(no output)"]
        problems.append(f"`kubeadm {what}` failed (exit {code}): {last[0]}")
        return None


@dataclass(frozen=True)
class ScenarioResult:
    """What one scenario found: its checks and problems before the renewal, and the renewal's
    (``renewed`` None when it did not run)."""

    name: str
    made: tuple[CertCheck, ...]
    absent: tuple[str, ...]
    made_problems: tuple[str, ...]
    renewed: tuple[CertCheck, ...] | None = None
    renew_problems: tuple[str, ...] = ()

    def problems(self) -> tuple[str, ...]:
        return self.made_problems + self.renew_problems


def _run_scenario(
    run: _Runner,
    dirs: _Dirs,
    version: KubeVersion,
    api: str,
    scenario: Scenario,
    *,
    renew_allowed: bool,
) -> ScenarioResult:
    """Generate everything with the scenario's config, check it, then (when nothing failed
    so far and ``renew_allowed``) renew all and check what was re-issued."""
    for old in dirs.kube.iterdir():
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    if scenario.seed_pki is not None:
        # kubeadm reuses CAs it finds in its certificatesDir (phases/certs/certs.go).
        shutil.copytree(scenario.seed_pki, dirs.kube / "pki", symlinks=False)
        dirs.sandbox.give(dirs.kube / "pki")
    (dirs.config / "kubeadm.yaml").write_text(
        kubeadm_config(version, stored_periods=scenario.stored_periods, api=api,
                       encryption_algorithm=scenario.encryption_algorithm)
    )
    config_path = f"{CONFIG_MOUNT}/kubeadm.yaml"
    problems: list[str] = []
    for step in generate_steps(version, config_path):
        run.together(step, problems)
    made, absent = check_directory(dirs.kube, version, scenario.leaf_years, scenario.ca_years)
    seeded = frozenset(f"pki/{n}.crt" for n in CA_CERTS) if scenario.seed_pki else frozenset()
    if scenario.encryption_algorithm and not problems:
        problems += key_type_problems(dirs.kube, version, scenario.encryption_algorithm,
                                      skip=seeded)
    made = [replace(c, stage=scenario.name) for c in made]
    result = ScenarioResult(scenario.name, tuple(made), tuple(absent), tuple(problems))
    renew = renew_command(version, config_path)
    if not (renew and renew_allowed and not problems and not absent):
        return result
    renew_problems: list[str] = []
    if not run(renew, "certs renew all", renew_problems):
        return replace(result, renew_problems=tuple(renew_problems))
    renewed = renewal_checks(
        dirs.kube, version, scenario.leaf_years, scenario.ca_years, made, renew_problems
    )
    if scenario.encryption_algorithm:
        renew_problems += [
            f"after certs renew all: {problem}"
            for problem in key_type_problems(dirs.kube, version, scenario.encryption_algorithm,
                                             skip=seeded)
        ]
    return replace(
        result,
        renewed=tuple(replace(c, stage=f"{scenario.name}-renew") for c in renewed),
        renew_problems=tuple(renew_problems),
    )


def merge_scenarios(
    problems: list[str], results: list[ScenarioResult]
) -> tuple[list[CertCheck], list[str], list[str]]:
    """(checks, problems, missing files) of the scenarios in order, as running them one after
    the other gives: a scenario renews only when nothing failed before it (``problems``: what
    the version checks found). A renewal run at the same time as an earlier scenario that
    then failed is left out, as if it never ran."""
    checks: list[CertCheck] = []
    problems = list(problems)
    missing: list[str] = []
    for result in results:
        problems += result.made_problems
        checks += result.made
        missing += result.absent
        ran = result.renewed is not None or bool(result.renew_problems)
        if ran and not problems:
            problems += result.renew_problems
            checks += result.renewed or ()
    return checks, problems, missing


def _parallel_scenarios(
    plan: list[Scenario],
    workers: int,
    run: _Runner,
    main_dirs: _Dirs,
    open_box: Callable[[int, Path | None], tuple[container.BuildContainer, _Dirs]],
    root: Path,
    log_path: Path | None,
    on_line: LineFn | None,
    version: KubeVersion,
    api: str,
    *,
    renew_allowed: bool,
    prefix: list[str],
    user: str,
    progress: ScenarioProgress,
) -> list[ScenarioResult]:
    """Scenario 0 in the open container ``run`` uses, the others each in a new one, on a pool
    of ``workers`` threads. Their output reaches the log and ``on_line`` in scenario order;
    the first scenario (in order) that raised raises here. Ctrl-C or SIGTERM here removes
    every container at once (what runs in them ends) before the error goes on."""
    boxes: list[container.BuildContainer] = [run.box]
    lines: list[list[str]] = [[] for _ in plan]
    logs = [None] + [root / f"verify-{i}.log" if log_path else None for i in range(1, len(plan))]
    stopping = threading.Event()

    def task(index: int) -> ScenarioResult:
        scenario = plan[index]
        if index == 0:
            main = _Runner(run.box, prefix, user, lines[0].append)
            with progress.running(index):
                return _run_scenario(main, main_dirs, version, api, scenario,
                                     renew_allowed=renew_allowed)
        box, dirs = open_box(index, logs[index])
        with box, progress.running(index):
            boxes.append(box)
            if stopping.is_set():
                raise VerifyError("verification stopped")
            own = _Runner(box, prefix, user, lines[index].append)
            return _run_scenario(own, dirs, version, api, scenario, renew_allowed=renew_allowed)

    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="longcert-verify")
    futures = []
    try:
        futures = [pool.submit(task, index) for index in range(len(plan))]
        results = [future.result() for future in futures]
    except BaseException:
        stopping.set()
        for future in futures:
            future.cancel()
        for box in list(boxes):
            box.kill()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for index in range(len(plan)):
        log = logs[index]
        if log_path is not None and log is not None and log.is_file():
            with log_path.open("a", encoding="utf-8") as handle:
                handle.write(log.read_text(encoding="utf-8"))
        if on_line is not None:
            for line in lines[index]:
                on_line(line)
    return results


# --- the verify and images commands -------------------------------------------------------


def list_images(binary: Path, config: str, *, image: str) -> list[str]:
    """`kubeadm config images list --config CONFIG` run with ``binary`` (linux/amd64, v1.11+)
    in a network-less container: the images a cluster made from ``config`` pulls, one per line.
    ``--config`` rather than ``--image-repository``: every version with the command reads it
    (the flag came later), and the config pins kubernetesVersion so nothing is looked up."""
    client = container.connect()
    with tempfile.TemporaryDirectory(prefix=runs.tagged("longcert-images-")) as scratch:
        root = Path(scratch)
        (root / "bin").mkdir()
        (root / "config").mkdir()
        shutil.copyfile(binary, root / "bin" / "kubeadm")
        (root / "bin" / "kubeadm").chmod(0o755)
        (root / "config" / "kubeadm.yaml").write_text(config)
        user = container.sandbox().user
        mounts = [
            container.BindMount(BIN_MOUNT, str(root / "bin"), read_only=True),
            container.BindMount(CONFIG_MOUNT, str(root / "config"), read_only=True),
        ]
        labels = {"org.longcert.purpose": "images", "org.longcert.platform": NATIVE_PLATFORM}
        with container.BuildContainer(client, image, mounts=mounts, labels=labels,
                                      user=user,
                                      limits=container.Limits().unprivileged()) as box:
            code, output = box.capture(
                [f"{BIN_MOUNT}/kubeadm", "config", "images", "list",
                 "--config", f"{CONFIG_MOUNT}/kubeadm.yaml"],
                user=user,
            )
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if code != 0:
        raise VerifyError(
            f"`kubeadm config images list` failed (exit {code}): "
            f"{(lines or ['(no output)'])[-1]}"
        )
    # kubeadm may print warnings before the list; an image reference has a ':' tag or '@'.
    return [line for line in lines if re.fullmatch(r"[a-z0-9][^\s]*[:@][^\s]+", line)]
