"""The stage order, as data, and the function that runs a prefix of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from longcert import build, container, package, patching, source, verify
from longcert.errors import ConfigError
from longcert.progress import Reporter
from longcert.settings import Settings
from longcert.versions import Release, resolve

STAGES: tuple[str, ...] = ("fetch", "patch", "compile", "verify", "package")


@dataclass(frozen=True)
class PipelineResult:
    """What the stages that ran produced (None for those that did not run)."""

    release: Release
    tree: source.SourceTree | None = None
    patch: patching.PatchResult | None = None
    build: build.BuildResult | None = None
    report: verify.VerifyReport | None = None
    output: package.BuildOutput | None = None


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
    """Run the stages from fetch up to ``until``; every input is checked before fetch starts."""
    if until not in STAGES:
        raise ConfigError(f"unknown stage {until!r}", f"stages: {', '.join(STAGES)}")
    release = resolve(version_text, settings.patches_dir)
    name = package.build_id(release.tag, settings.years, settings.ca_years)
    if _wants(until, "package"):
        package.check_target(settings.builds_dir, name, settings.force)
    if _wants(until, "compile"):
        client = container.connect()  # no engine: say so before cloning anything
        if settings.go_version != "auto":
            container.ensure_image(
                client,
                settings.image.format(go_version=settings.go_version),
                settings.registry_mirror,
                reporter.step,
            )

    reporter.preamble(
        f"{until} {release.tag} (patch set {release.patch_set.name})", settings.rows()
    )
    result = PipelineResult(release)
    tree = None
    try:
        with reporter.stage("fetch"):
            tree = source.checkout(
                settings.repo, release.version, settings.cache_dir, reporter.step
            )
            reporter.step(f"{tree.tag} = {tree.commit[:12]} from {tree.remote}")
        result = PipelineResult(release, tree)
        if not _wants(until, "patch"):
            return result

        with reporter.stage("patch"):
            patch = patching.plan(
                release.patch_set, tree.path, release.version, settings.years, settings.ca_years
            )
            if not dry_run:
                source.apply_diff(tree, patch.diff)
            for change in patch.changes:
                reporter.step(f"edited {change.path}")
        result = PipelineResult(release, tree, patch)
        if dry_run or not _wants(until, "compile"):
            return result

        log = log_path(settings, name)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        with reporter.stage("compile"):
            build_plan = build.plan(
                tree, release.version, settings.platforms, settings.go_version, settings.image
            )
            reporter.step(
                f"Go {build_plan.go.version} (from {build_plan.go.source}), image "
                f"{build_plan.image}, platforms {' '.join(build_plan.build_platforms)}"
            )
            built = build.compile_kubeadm(
                build_plan,
                tree,
                meta_dir=tree.path.parent / "meta",
                log_path=log,
                build_cache_volume=settings.build_cache_volume,
                module_cache_volume=settings.module_cache_volume,
                registry_mirror=settings.registry_mirror,
                on_line=reporter.output_line,
                progress=reporter.step,
            )
            reporter.end_output()
        result = PipelineResult(release, tree, patch, built)
        if not _wants(until, "verify"):
            return result

        with reporter.stage("verify"):
            report = verify.verify_binary(
                built.verify_binary,
                release.version,
                settings.years,
                settings.ca_years,
                image=built.image,
                log_path=log,
            )
            verify.require_pass(report)
            reporter.step(
                f"{len(report.checks)} certificates valid as asked; kubeadm version "
                f"{report.reported_version}"
            )
        result = PipelineResult(release, tree, patch, built, report)
        if not _wants(until, "package"):
            return result

        with reporter.stage("package"):
            output = package.write(
                settings.builds_dir, name, tree, patch, built, report, force=settings.force
            )
            reporter.step(f"wrote {output.path}")
        return PipelineResult(release, tree, patch, built, report, output)
    finally:
        if tree is not None and not settings.keep_worktree:
            source.remove_worktree(tree)


def summary_rows(result: PipelineResult) -> list[list[str]]:
    """One row per packaged artifact: file, size, sha256, verified validity."""
    if result.build is None:
        return []
    verified = "-"
    if result.report is not None and result.report.passed:
        verified = f"leaf {result.report.leaf_years}y, CA {result.report.ca_years}y"
    return [
        [a.file_name, f"{a.size / 2**20:.1f} MiB", a.sha256, verified]
        for a in result.build.artifacts
    ]
