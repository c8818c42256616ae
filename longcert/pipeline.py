"""The stage order, as data, and the function that runs a prefix of it."""

from __future__ import annotations

import errno
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longcert import build, container, image, package, patching, publish, runs, source, verify
from longcert.errors import (
    BuildError,
    ConfigError,
    ImageError,
    LongcertError,
    PatchError,
    PublishError,
    SourceError,
    VerifyError,
)
from longcert.patching import Release, resolve
from longcert.progress import Reporter, short_hash
from longcert.settings import Settings
from longcert.verify.document import html_report
from longcert.versions import (
    GO_RULES,
    GoVersion,
    go_mod_floor,
    go_policy,
    go_version_for_tree,
    vendored_incompatibilities,
)

STAGES: tuple[str, ...] = ("fetch", "patch", "compile", "verify", "package")


@dataclass(frozen=True)
class PipelineResult:
    """What the stages that ran produced (None for those that did not run)."""

    release: Release
    tree: source.SourceTree | None = None
    patch: patching.PatchResult | None = None
    build: build.BuildResult | None = None
    reports: tuple[verify.VerifyReport, ...] = ()
    output: package.BuildOutput | None = None
    published: publish.PublishResult | None = None


def _wants(until: str, stage: str) -> bool:
    return STAGES.index(stage) <= STAGES.index(until)


def log_path(settings: Settings, name: str) -> Path:
    """Build logs live in the cache so a failed build's log outlives its worktree."""
    return settings.cache_dir / "logs" / f"{name}.log"


def run(
    version_text: str,
    settings: Settings,
    reporter: Reporter,
    *,
    until: str = "package",
    dry_run: bool = False,
) -> PipelineResult:
    """Run the stages from fetch up to ``until``; every input is checked before fetch starts.

    Every second of the run is in a stage line (prepare, the stages, the time between them,
    cleanup) and in ``<cache>/logs/<build id>.timings.json`` (see :func:`timings_path`).

    The run registers itself in the cache (so what it leaves when killed is swept later),
    sweeps what dead runs left, and holds its build id's lock from before the first check to
    the end, so two runs of one build id never interleave."""
    reporter.start_run()
    started = time.time()
    result = _run_registered(version_text, settings, reporter, until, dry_run)
    record = {"build_id": build_name(result.release, settings), "until": until,
              "started": round(started, 3), **reporter.end_run(), "ended": round(time.time(), 3)}
    path = timings_path(settings, str(record["build_id"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.write_atomic(path, json.dumps(record, indent=2) + "\n")
    return result


def timings_path(settings: Settings, name: str) -> Path:
    """Where a run's stage timings are kept (JSON, the last run of that build id): beside
    its log, in the cache, so an identical rebuild that writes no build has them too."""
    return log_path(settings, name).with_suffix(".timings.json")


def _run_registered(
    version_text: str, settings: Settings, reporter: Reporter, until: str, dry_run: bool
) -> PipelineResult:
    if until not in STAGES:
        raise ConfigError(f"unknown stage {until!r}", f"stages: {', '.join(STAGES)}")
    release = resolve(version_text, settings.patches_dir)
    name = build_name(release, settings)
    with runs.registered(settings.cache_dir):
        sweep(settings.cache_dir, reporter.step)
        if dry_run or not _wants(until, "compile"):
            return _run(release, name, settings, reporter, until, dry_run)
        with runs.file_lock(
            build_lock_path(settings, name), f"the build id {name}", on_wait=reporter.step
        ):
            runs.note_builds_dir(settings.builds_dir)
            return _run(release, name, settings, reporter, until, dry_run)


def pinned(release: Release, settings: Settings) -> bool:
    """Whether --pin-validity changes this release (only where a patch set has pin edits)."""
    return settings.pin_validity and bool(release.patch_set.pin_edits)


def build_name(release: Release, settings: Settings) -> str:
    """The build id of ``release`` with these settings."""
    return package.build_id(
        release.tag,
        settings.years,
        settings.ca_years,
        pinned=pinned(release, settings),
        platforms=settings.platforms,
    )


def build_inputs(release: Release, settings: Settings) -> dict[str, object]:
    """What goes into this build, known before it starts (manifest.json ``inputs``)."""
    return package.build_inputs(
        release.tag,
        source.display_remote(settings.repo),
        settings.years,
        settings.ca_years,
        pinned=pinned(release, settings),
        platforms=settings.platforms,
        patch_set=release.patch_set.name,
        patch_set_sha256=hashlib.sha256(release.patch_set.source_file.read_bytes()).hexdigest(),
        go_version=settings.go_version,
        image=settings.image,
    )


def build_lock_path(settings: Settings, name: str) -> Path:
    """One lock per build id and builds directory, kept in the cache (never in builds/)."""
    where = hashlib.sha256(str(settings.builds_dir.resolve()).encode()).hexdigest()[:12]
    return settings.cache_dir / "locks" / f"build-{name}-{where}.lock"


def sweep(cache_dir: Path, say: Callable[[str], None] | None = None) -> list[str]:
    """Remove the worktrees, scratch directories and containers of runs that died."""

    def containers(run_id: str) -> list[str]:
        return container.remove_run_containers(container.connect(), run_id)

    removed = runs.sweep(cache_dir, containers, lambda: source.prune_all(cache_dir))
    if removed and say is not None:
        say(f"removed what runs that are no longer alive left: {', '.join(removed)}")
    return removed


# An OSError inside a stage (a full disk, a permission) is that stage's error, in one line.
STAGE_ERRORS: dict[str, type[LongcertError]] = {
    "fetch": SourceError,
    "patch": PatchError,
    "compile": BuildError,
    "verify": VerifyError,
    "package": PublishError,
}


@contextmanager
def _stage(reporter: Reporter, name: str) -> Iterator[None]:
    with reporter.stage(name):
        try:
            yield
        except OSError as exc:
            raise STAGE_ERRORS[name](
                f"{name} failed: {os_error_text(exc)}", os_error_hint(exc)
            ) from exc


def os_error_text(exc: OSError) -> str:
    """``No space left on device: /path`` (strerror and the file, without Python's wrapping)."""
    what = exc.strerror or str(exc)
    where = exc.filename or ""
    return f"{what}: {where}" if where else what


def os_error_hint(exc: OSError) -> str | None:
    if exc.errno == errno.ENOSPC:
        return "free disk space there and run again; nothing already built was replaced"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "check the permissions of that path (--cache-dir, --builds-dir)"
    return None


def _run(
    release: Release,
    name: str,
    settings: Settings,
    reporter: Reporter,
    until: str,
    dry_run: bool,
) -> PipelineResult:
    """Up to ``until``: check what can be checked before cloning, then fetch, patch, compile,
    verify, package and publish, each stage on what the one before made."""
    inputs = build_inputs(release, settings)
    target = _publish_target(settings, until, dry_run)
    reused = _reuse_existing(release, name, settings, inputs, target, reporter, until, dry_run)
    if reused is not None:
        return reused
    _preamble(release, settings, until, reporter)
    tree = None
    try:
        tree = _fetch(release, settings, reporter)
        if not _wants(until, "patch"):
            return PipelineResult(release, tree)
        patch = _patch(tree, release, settings, reporter, dry_run)
        if dry_run or not _wants(until, "compile"):
            return PipelineResult(release, tree, patch)
        built, go, log = _compile(tree, release, name, settings, reporter)
        if not _wants(until, "verify"):
            return PipelineResult(release, tree, patch, built)
        reports = _verify(built, patch, go, tree, release, name, settings, reporter, log)
        if not _wants(until, "package"):
            return PipelineResult(release, tree, patch, built, reports)
        output = _package(tree, patch, built, reports, name, settings, inputs, reporter)
        published = (publish.push(publish.load_build(output.path), target, reporter)
                     if target is not None else None)
        return PipelineResult(release, tree, patch, built, reports, output, published)
    finally:
        if tree is not None and not settings.keep_worktree:
            source.remove_worktree(tree)


def _publish_target(settings: Settings, until: str, dry_run: bool) -> publish.Target | None:
    """The --publish target, opened before anything is cloned or built (a bad target or a
    missing token is refused first)."""
    if not _wants(until, "package") or not settings.publish or dry_run:
        return None
    return publish.open_target(settings.publish, settings, dry_run=False)


def _reuse_existing(
    release: Release, name: str, settings: Settings, inputs: dict[str, object],
    target: publish.Target | None, reporter: Reporter, until: str, dry_run: bool,
) -> PipelineResult | None:
    """Like make: the very same build, still intact, is the answer (published if asked); a
    different one of the same name is refused. None: build it."""
    if not _wants(until, "package"):
        return None
    if not settings.force and not dry_run:
        existing = publish.existing_build(settings.builds_dir, name, inputs)
        if existing is not None:
            _check_tag_unmoved(existing, release, settings, reporter)
            reporter.say(
                f"longcert: {existing.path} is this build already (same inputs, every "
                "sha256 re-checked, verified): nothing to do"
            )
            published = None
            if target is not None:
                # verified when it was built, but not run since: run it before it leaves, as
                # `publish` does (a pass is remembered by sha256)
                publish.check_binaries_run(existing, image=settings.run_image,
                                           cache_dir=settings.cache_dir, progress=reporter.step)
                published = publish.push(existing, target, reporter)
            output = package.BuildOutput(existing.path, dict(existing.manifest))
            return PipelineResult(release, output=output, published=published)
    package.check_target(settings.builds_dir, name, settings.force)
    return None


def _check_tag_unmoved(
    existing: publish.Build, release: Release, settings: Settings, reporter: Reporter
) -> None:
    """Reuse only while the tag still names the commit the build was made from: a tag moved
    upstream is another build under the same name (refused, --force rebuilds it). A remote
    that cannot be asked now leaves the recorded commit, as the fetch would use its mirror."""
    kube = existing.manifest.get("kubernetes")
    recorded = str(kube.get("commit", "")) if isinstance(kube, dict) else ""
    now = source.tag_commit(settings.repo, release.tag, settings.repo_credentials)
    if now is None:
        reporter.step(f"{settings.repo} cannot be asked for {release.tag} now: reusing the "
                      f"build of {recorded[:12]} as recorded")
    elif now != recorded:
        raise PublishError(
            f"{existing.path} was built from {release.tag} = {recorded[:12]}, but the tag now "
            f"names {now[:12] or 'nothing'} on {settings.repo}: the tag moved",
            "pass --force to build the tag as it is now (the old build is replaced only once "
            "the new one passes)",
        )


def _preamble(release: Release, settings: Settings, until: str, reporter: Reporter) -> None:
    """The settings and where each came from; with a compile ahead, the Go rule and (when the
    image is known up front) the builder image, found, probed and assessed before cloning."""
    rows = settings.rows()
    if _wants(until, "compile") and settings.go_version == "auto":
        policy = go_policy(release.version)
        rows.append((
            "go rule",
            f"{policy.rule}: {GO_RULES[policy.rule]}",
            f"config/go-versions.yaml, v{policy.minor}",
        ))
    if _wants(until, "compile"):
        client = container.connect()  # no engine: say so before cloning anything
        if settings.go_version != "auto" or "{go_version}" not in settings.image:
            platform = container.engine_platform(client)
            early = _choose_image(client, platform, settings, release, None, None, reporter)
            rows += _image_rows(early, image.assess(early.probe, engine_platform=platform),
                                detailed=reporter.verbose)
    if release.unchecked:
        reporter.warn(
            f"{release.tag} is newer than every patch set (the newest, {release.patch_set.name}, "
            f"was checked up to v{release.patch_set.last}): trying it; anchors still fail "
            "closed and verification still proves the result"
        )
    task = "build" if until == "package" else until  # the task a user typed, named by it
    reporter.preamble(f"{task} {release.tag} (patch set {release.patch_set.name})", rows)


def _fetch(release: Release, settings: Settings, reporter: Reporter) -> source.SourceTree:
    """Stage fetch: the tag's tree from the mirror cache."""
    with _stage(reporter, "fetch"), reporter.ticking(f"fetching {release.tag}"):
        tree = source.checkout(
            settings.repo,
            release.version,
            settings.cache_dir,
            reporter.step,
            settings.repo_credentials,
            reuse=not settings.keep_worktree,  # a kept-for-debugging tree is never reset
            activity=reporter.activity,
        )
        reporter.step(f"{tree.tag} = {tree.commit[:12]} from {tree.remote}")
    return tree


def _patch(
    tree: source.SourceTree, release: Release, settings: Settings, reporter: Reporter,
    dry_run: bool,
) -> patching.PatchResult:
    """Stage patch: the anchored edits, applied unless ``dry_run``."""
    with _stage(reporter, "patch"):
        patch = patching.plan(
            release.patch_set,
            tree.path,
            release.version,
            settings.years,
            settings.ca_years,
            pin=settings.pin_validity,
        )
        if settings.pin_validity and not patch.pinned:
            reporter.step(
                f"--pin-validity does not apply to {release.tag}: before v1.31 kubeadm's "
                "configuration cannot set certificate validity"
            )
        if not dry_run:
            source.apply_diff(tree, patch.diff)
        for change in patch.changes:
            reporter.step(f"edited {change.path}")
    return patch


def _compile(
    tree: source.SourceTree, release: Release, name: str, settings: Settings,
    reporter: Reporter,
) -> tuple[build.BuildResult, str, Path]:
    """Stage compile: choose and check the builder image and Go, then make kubeadm for every
    platform. Returns the build, the Go it was built with and the build log."""
    log = log_path(settings, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    with _stage(reporter, "compile"):
        client = container.connect()
        platform = container.engine_platform(client)
        floor = go_mod_floor(tree.path)
        choice = _choose_image(client, platform, settings, release, tree.path, floor, reporter)
        _check_go_fits_tree(choice, tree.path, release, settings, reporter)
        toolbox = image.assess(choice.probe, engine_platform=platform, floor=floor)
        build_plan = build.plan(tree, release.version, settings.platforms, choice, toolbox)
        reporter.step(f"Go {build_plan.go.version}: {choice.chosen_by}")
        reporter.step(
            f"image {choice.image} ({choice.image_id[:19]}): {choice.probe.summary()}"
            + (f"; supplied: {', '.join(toolbox.supplied)}" if toolbox.supplied else "")
        )
        reporter.step(f"platforms {' '.join(build_plan.build_platforms)}")
        caches = build.cache_volumes(
            settings.build_cache_volume,
            settings.module_cache_volume,
            remote=settings.repo,
            shared=any(
                settings.sources[setting] != "default"
                for setting in ("build_cache_volume", "module_cache_volume")
            ),
            fresh_id=(runs.current_id() or "once") if settings.no_cache else None,
        )
        reporter.step(caches.describe())
        build.note_cache_volumes(settings.cache_dir, caches)
        with reporter.ticking("compiling"):
            built = build.compile_kubeadm(
                build_plan,
                tree,
                meta_dir=tree.path.parent / "meta",
                log_path=log,
                caches=caches,
                on_line=reporter.output_line,
                limits=_limits(settings),
            )
        reporter.end_output()
    return built, choice.go.version, log


def _verify(
    built: build.BuildResult, patch: patching.PatchResult, go: str, tree: source.SourceTree,
    release: Release, name: str, settings: Settings, reporter: Reporter, log: Path,
) -> tuple[verify.VerifyReport, ...]:
    """Stage verify: run every binary that can run, generate every certificate and
    kubeconfig, and fail closed; a failure keeps its evidence beside the log."""
    with _stage(reporter, "verify"):
        binaries = [(build.VERIFY_PLATFORM, built.verify_binary)] + [
            (a.platform, a.path) for a in built.artifacts if a.platform != build.VERIFY_PLATFORM
        ]
        reports = []
        for platform, binary in binaries:

            def activity(line: str, platform: str = platform) -> None:
                reporter.activity(f"{platform}: {line}")

            with reporter.ticking(f"verifying {platform}"):
                report = verify.verify_binary(
                    binary,
                    release.version,
                    settings.years,
                    settings.ca_years,
                    image=built.image_id,
                    pinned=patch.pinned,
                    log_path=log,
                    limits=_limits(settings),
                    on_activity=activity,
                )
            how = report.executed_with or f"header {report.header}"
            counted = verify.checks_phrase(*verify.count_checks(report))
            reporter.step(f"{platform}: {report.status} ({how}), {counted}")
            reports.append(report)
        if not all(report.passed for report in reports):
            kept = _keep_failure_evidence(settings, name, patch.diff, reports)
            reporter.step(f"kept {', '.join(str(path) for path in kept)} for a look")
            _stand_in_go_crash(reports, go, tree.path, release, settings, log)
        verify.require_pass(tuple(reports))
    return tuple(reports)


def _package(
    tree: source.SourceTree, patch: patching.PatchResult, built: build.BuildResult,
    reports: tuple[verify.VerifyReport, ...], name: str, settings: Settings,
    inputs: dict[str, object], reporter: Reporter,
) -> package.BuildOutput:
    """Stage package: builds/<id>/ with the binaries, sums, manifest and evidence."""
    with _stage(reporter, "package"):
        output = package.write(
            settings.builds_dir,
            name,
            tree,
            patch,
            built,
            reports,
            force=settings.force,
            inputs=inputs,
        )
        reporter.step(f"wrote {output.path}")
    return output


def _keep_failure_evidence(
    settings: Settings, name: str, diff: str, reports: list[verify.VerifyReport]
) -> tuple[Path, Path, Path]:
    """A build that fails verification writes no build directory; its verify.json,
    patch.diff and report.html (the failing certificates on the timeline) are kept beside its
    log (where the release workflow's failure upload finds them)."""
    log = log_path(settings, name)
    verify_json = log.with_suffix(".verify.json")
    patch_diff = log.with_suffix(".patch.diff")
    report_html = log.with_suffix(".report.html")
    document = {"passed": False, "platforms": [report.to_dict() for report in reports]}
    runs.write_atomic(verify_json, json.dumps(document, indent=2) + "\n")
    runs.write_atomic(patch_diff, diff)
    runs.write_atomic(report_html, html_report(tuple(reports)))
    return verify_json, patch_diff, report_html


def _limits(settings: Settings) -> container.Limits:
    return container.Limits(memory=settings.container_memory, pids=settings.container_pids)


def _tree_go(tree: Path, release: Release) -> str:
    """The Go the tree itself names ("" when it names none and the table has no row)."""
    try:
        return go_version_for_tree(tree, release.version).version
    except ConfigError:
        return ""


def _check_go_fits_tree(
    choice: image.ImageChoice, tree: Path, release: Release, settings: Settings,
    reporter: Reporter,
) -> None:
    """Before compiling: refuse a Go that the tree's vendored code is known to crash on
    (config/go-incompatibilities.yaml), and warn of one above the newest Go the minor is known
    to run with (config/go-versions.yaml's ceiling)."""
    go = choice.go.version
    own = _tree_go(tree, release)
    own_fits = bool(own) and own != go and not vendored_incompatibilities(tree, own)
    fix = (f"build with the tree's own Go {own}: "
           f"`{image.builder_image_command(settings.image, own)}`" if own_fits
           else "pass --go-version with an older Go")
    problems = vendored_incompatibilities(tree, go)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ImageError(
            f"{release.tag} with Go {go} would build a kubeadm that crashes: {problems[0]}{more}",
            fix + ", then run this again",
        )
    policy = go_policy(release.version)
    if policy.above_ceiling(go):
        reporter.warn(
            f"Go {go} is newer than any Go v{policy.minor} is known to run with "
            f"({policy.ceiling}: {policy.ceiling_note}): verification proves the certificates, "
            f"but code it does not run may still fail; {fix}"
        )


def _stand_in_go_crash(
    reports: list[verify.VerifyReport], go: str, tree: Path, release: Release,
    settings: Settings, log: Path,
) -> None:
    """One line when a kubeadm built with another Go than the tree's crashes in the Go runtime
    (its vendored code reads runtime internals of the Go it was released with): the command
    that makes the tree's own Go, the stack trace left in the build log."""
    crash = next((line for report in reports for line in report.failures()
                  if verify.CRASHED in line), "")
    own = _tree_go(tree, release)
    if not crash or not own or own == go:
        return
    first = crash.split(f"{verify.CRASHED}: ", 1)[-1]
    raise VerifyError(
        f"kubeadm {release.tag} built with Go {go} instead of the tree's Go {own} crashes "
        f"({first}): the Go stood in for one it does not run with",
        f"`{image.builder_image_command(settings.image, own)}`, then build again (the stack "
        f"trace is in {log})",
    )


def _choose_image(
    client: Any,
    engine_platform: str,
    settings: Settings,
    release: Release,
    tree: Path | None,
    floor: str | None,
    reporter: Reporter,
) -> image.ImageChoice:
    """The builder image for this run; ``tree`` None = before fetch (image known up front);
    ``floor`` is the tree's go.mod ``go`` line."""
    auto = settings.go_version == "auto"
    if not auto:
        wanted = GoVersion(settings.go_version, "setting go_version")
    elif tree is not None:
        wanted = go_version_for_tree(tree, release.version)
    else:
        wanted = GoVersion("", "--image")
    return image.choose(
        client,
        wanted=wanted,
        policy=go_policy(release.version) if auto else None,
        template=settings.image,
        registry_mirror=settings.registry_mirror,
        cache_dir=settings.cache_dir,
        engine_platform=engine_platform,
        floor=floor,
        progress=reporter.step,
        breaks=((lambda go: vendored_incompatibilities(tree, go, detail=False))
                if tree is not None else None),
    )


def _image_rows(
    choice: image.ImageChoice, toolbox: image.Toolbox, *, detailed: bool = True
) -> list[tuple[str, str, str]]:
    """Preamble rows: the builder image; ``detailed`` (--verbose) adds what the probe found
    and what longcert supplies (the compile stage says both again)."""
    rows = [("builder image", f"{choice.image} ({choice.image_id[:19]})", choice.chosen_by)]
    if detailed:
        rows += [
            ("image probe", choice.probe.summary(), "probed once per image id"),
            ("supplied", ", ".join(toolbox.supplied) or "nothing", "by longcert, read-only"),
        ]
    return rows


def summary_rows(result: PipelineResult) -> list[list[str]]:
    """One row per packaged artifact: file, size, sha256, verification status and validity;
    for an identical build answered from the existing one, its manifest's artifacts."""
    if result.build is None:
        return _existing_rows(result.output.manifest) if result.output is not None else []
    status = {r.platform: r for r in result.reports}
    rows = []
    for artifact in result.build.artifacts:
        report = status.get(artifact.platform)
        verified = "-"
        if report is not None:
            verified = f"{report.status}: leaf {report.leaf_years}y, CA {report.ca_years}y"
        rows.append(
            [artifact.file_name, f"{artifact.size / 2**20:.1f} MiB", short_hash(artifact.sha256),
             verified]
        )
    return rows


def _existing_rows(manifest: dict[str, Any]) -> list[list[str]]:
    """summary_rows of a build already written, from its manifest (as publish checked it)."""
    validity = manifest.get("validity") or {}
    platforms = (manifest.get("verification") or {}).get("platforms") or {}
    rows = []
    for artifact in manifest.get("artifacts") or []:
        status = (platforms.get(artifact.get("platform")) or {}).get("status", "-")
        rows.append([
            str(artifact.get("file", "")),
            f"{int(artifact.get('size', 0)) / 2**20:.1f} MiB",
            short_hash(str(artifact.get("sha256", ""))),
            f"{status}: leaf {validity.get('leaf_years')}y, CA {validity.get('ca_years')}y",
        ])
    return rows


def up_to_date(result: PipelineResult) -> bool:
    """Whether the run answered with an identical build already there (nothing built)."""
    return result.build is None and result.output is not None
