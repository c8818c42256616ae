"""`invoke release` and `invoke matrix`: pick versions, skip what the target has, build the rest.

Versions are an explicit list, or the newest patch release of each minor in a range, read from the
configured remote with ``git ls-remote`` (pre-releases and versions no patch set covers are left
out of a range). For each version the target is asked first (``has``); a version it lacks is
built and verified (or, when ``builds/<id>`` already holds a verified build, that one is used)
and published. One version failing does not stop the others: the summary table lists every
version, and the run then fails with the first failure's error class (and its exit code).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from longcert import pipeline, publish, source
from longcert.errors import ConfigError, LongcertError
from longcert.patching import resolve
from longcert.progress import Reporter
from longcert.settings import Settings
from longcert.versions import KubeVersion, in_range

_BOUND = re.compile(r"v?\d+\.\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Outcome:
    """What happened to one version."""

    tag: str
    build_id: str
    status: str  # already published / built and published / published existing build / failed
    detail: str = ""
    seconds: float = 0.0
    error: LongcertError | None = field(default=None, compare=False)

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass(frozen=True)
class ReleaseResult:
    target: str
    outcomes: tuple[Outcome, ...]
    dry_run: bool

    @property
    def failures(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.failed)

    @property
    def built(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "built and published")


def _split(text: str) -> list[str]:
    return [item for item in re.split(r"[\s,]+", text.strip()) if item]


def _check_bound(text: str | None, flag: str) -> str | None:
    if text is None or not text.strip():
        return None
    value = text.strip()
    if not _BOUND.fullmatch(value):
        raise ConfigError(
            f"{flag} {value!r} is not a Kubernetes version",
            "give a minor such as 1.28, or an exact version such as v1.28.7",
        )
    return value


def newest_patches(
    tags: Iterable[str], first: str | None, last: str | None, settings: Settings
) -> tuple[KubeVersion, ...]:
    """The newest patch release of each minor in [first, last] that a patch set covers."""
    newest: dict[tuple[int, int], KubeVersion] = {}
    for tag in tags:
        try:
            version = KubeVersion.parse(tag)
        except ConfigError:
            continue
        if version.pre or not in_range(version, first or "0.0", last or "999999.0"):
            continue
        key = (version.major, version.minor)
        if key not in newest or newest[key] < version:
            newest[key] = version
    covered = []
    for key in sorted(newest):
        try:
            if resolve(newest[key].tag, settings.patches_dir).unchecked:
                continue  # newer than every patch set: built only when named with --versions
        except ConfigError:
            continue  # older than every patch set: nothing longcert can build
        covered.append(newest[key])
    return tuple(covered)


def select(
    settings: Settings, versions: str | None, first: str | None, last: str | None
) -> tuple[KubeVersion, ...]:
    """The versions to consider: the explicit list, or the newest patch of each minor in range."""
    first = _check_bound(first, "--from")
    last = _check_bound(last, "--to")
    if versions and versions.strip():
        if first or last:
            raise ConfigError("give either --versions or --from/--to, not both")
        chosen = []
        for text in _split(versions):
            release = resolve(text, settings.patches_dir)  # bad tag or no patch set: ConfigError
            if release.version not in chosen:
                chosen.append(release.version)
        return tuple(chosen)
    if not (first or last):
        raise ConfigError(
            "no versions to release",
            "give --versions v1.33.7,v1.32.11 or a range such as --from 1.31 --to 1.33",
        )
    tags = source.remote_tags(source.normalize_remote(settings.repo), settings.repo_credentials)
    found = newest_patches(tags, first, last, settings)
    if not found:
        raise ConfigError(
            f"no release of {settings.repo} between {first or 'the first'} and "
            f"{last or 'the last'} is covered by a patch set",
            "check --from/--to and --repo (`invoke versions` lists the patch sets)",
        )
    return found


def _target(settings: Settings, target_text: str | None, dry_run: bool) -> publish.Target:
    text = target_text if target_text is not None else settings.publish
    if not text:
        raise ConfigError(
            "a release needs a target: --publish TARGET", f"give {publish.TARGET_FORMS}"
        )
    return publish.open_target(text, settings, dry_run=dry_run)


def matrix(
    settings: Settings,
    versions: str | None,
    first: str | None,
    last: str | None,
    target_text: str | None = None,
) -> list[dict[str, str]]:
    """The versions still to build, as CI matrix entries (``version``, ``build_id``).

    With a target (argument or the ``publish`` setting), versions it already has are left out.
    """
    chosen = select(settings, versions, first, last)
    text = target_text if target_text is not None else settings.publish
    target = publish.open_target(text, settings, dry_run=True) if text else None
    entries = []
    for version in chosen:
        ref = build_ref(version, settings)
        if target is not None and target.has(ref):
            continue
        entries.append({"version": version.tag, "build_id": ref.build_id})
    return entries


def matrix_json(
    settings: Settings,
    versions: str | None,
    first: str | None,
    last: str | None,
    target_text: str | None = None,
) -> str:
    """`invoke matrix` output: one line of JSON, e.g. for $GITHUB_OUTPUT."""
    return json.dumps(matrix(settings, versions, first, last, target_text), separators=(",", ":"))


def build_ref(version: KubeVersion, settings: Settings) -> publish.BuildRef:
    """How ``version`` built with these settings is named on every target."""
    release = resolve(version.tag, settings.patches_dir)
    return publish.BuildRef.of(
        version.tag,
        settings.years,
        settings.ca_years,
        pinned=pipeline.pinned(release, settings),
        platforms=settings.platforms,
    )


def _one(
    version: KubeVersion,
    settings: Settings,
    target: publish.Target,
    reporter: Reporter,
    dry_run: bool,
) -> Outcome:
    ref = build_ref(version, settings)
    started = time.monotonic()

    def outcome(status: str, detail: str = "", error: LongcertError | None = None) -> Outcome:
        return Outcome(version.tag, ref.build_id, status, detail, time.monotonic() - started, error)

    try:
        if target.has(ref):
            reporter.say(f"{version.tag}: {target.name} already has {ref.build_id}, skipped")
            return outcome("already published")
        local = settings.builds_dir / ref.build_id
        # Reused only when it is this very build (inputs match, sums re-checked); a different
        # build of the same name is this version's failure, never published in its place.
        release = resolve(version.tag, settings.patches_dir)
        existing = (
            None
            if settings.force
            else publish.existing_build(
                settings.builds_dir, ref.build_id, pipeline.build_inputs(release, settings)
            )
        )
        if dry_run:
            what = f"publish the existing {local}" if existing else "build, verify and publish"
            reporter.say(f"{version.tag}: would {what}")
            return outcome("would publish" if existing else "would build and publish")
        if existing is not None:
            reporter.say(f"{version.tag}: publishing the build already in {local}")
            build = existing  # already loaded and checked: not hashed a second time
            # verified when it was built, not run since: run before it leaves, as publish does
            publish.check_binaries_run(build, image=settings.run_image,
                                       cache_dir=settings.cache_dir, progress=reporter.step)
            status = "published existing build"
        else:
            # The release publishes (after its own check), so the pipeline does not.
            sources = {**settings.sources, "publish": "publishes after the build: release"}
            result = pipeline.run(
                version.tag, replace(settings, publish="", sources=sources), reporter
            )
            assert result.output is not None
            build = publish.load_build(result.output.path)
            status = "built and published"
        published = publish.push(build, target, reporter)
        return outcome(status, published.location)
    except LongcertError as err:
        reporter.say(f"{version.tag}: FAILED: {type(err).__name__}: {err}")
        return outcome("failed", f"{type(err).__name__}: {err}", err)
    except Exception as exc:  # a full disk, a race, a bug: this version's row, not the run's end
        text = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) else str(exc)
        wrapped = LongcertError(f"{type(exc).__name__}: {text}")
        reporter.say(f"{version.tag}: FAILED: {wrapped}")
        return outcome("failed", str(wrapped), wrapped)


def run(
    settings: Settings,
    reporter: Reporter,
    *,
    versions: str | None = None,
    first: str | None = None,
    last: str | None = None,
    target_text: str | None = None,
    dry_run: bool = False,
) -> ReleaseResult:
    """Release every selected version the target lacks; print a summary; fail if any failed."""
    target = _target(settings, target_text, dry_run)
    chosen = select(settings, versions, first, last)
    reporter.preamble(
        f"release {len(chosen)} version(s) to {target.name}"
        f"{' (dry run)' if dry_run else ''}: {' '.join(v.tag for v in chosen)}",
        settings.rows(),
    )
    outcomes = tuple(_one(v, settings, target, reporter, dry_run) for v in chosen)
    result = ReleaseResult(target.name, outcomes, dry_run)
    reporter.summary(
        f"release to {target.name}: {len(result.built)} built, {len(result.failures)} failed, "
        f"{len(outcomes)} version(s)",
        summary_rows(result),
        ["version", "build", "result", "time", "detail"],
    )
    raise_if_failed(result)
    return result


def summary_rows(result: ReleaseResult) -> list[list[str]]:
    return [
        [o.tag, o.build_id, o.status, f"{o.seconds:.0f}s", o.detail[:120]] for o in result.outcomes
    ]


def raise_if_failed(result: ReleaseResult) -> None:
    """Raise the first failure's error class, naming every failed version."""
    if not result.failures:
        return
    first = result.failures[0].error
    assert first is not None
    names = ", ".join(f"{o.tag} ({type(o.error).__name__})" for o in result.failures)
    raise type(first)(
        f"{len(result.failures)} of {len(result.outcomes)} version(s) failed: {names}",
        "see the table above; run the same command again to retry only what is missing",
    )
