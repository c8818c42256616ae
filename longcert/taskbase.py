"""What every longcert task is made with (the tasks themselves are in :mod:`longcert.tasks`).

Invoke's task class with longcert's short flags and the old names of renamed flags
(:class:`LongcertTask`, :func:`task`); the wrapper that turns longcert's errors, Ctrl-C and
signals into one line and an exit code (:func:`cli`); the help of the flags many tasks share
(:data:`SETTING_HELP`, :data:`COMMON`, :data:`BUILD`); and a task's flags turned into settings
and one call into the pipeline (:func:`_settings`, :func:`_run`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

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
    "run_image": "image to run kubeadm in (default debian:bookworm-slim; pulled when missing, "
    "else longcert/debian-base:bookworm): kubeadm is static, any Linux image with sleep works",
    "verbose": "show every setting in the preamble, not only those changed from the defaults",
    "publish": "after a verified build, publish it to TARGET: a directory (PATH or dir:PATH), "
    "github:OWNER/REPO (token from $GITHUB_TOKEN) or oci://HOST[:PORT]/REPOSITORY",
    "github_api_url": "GitHub API base URL (default https://api.github.com; GitHub Enterprise: "
    "https://HOST/api/v3)",
    "oci_insecure": "plain HTTP to an oci:// registry that is not on localhost (no TLS)",
    "sign_key": "sign what is published with this ECDSA P-256 PEM key (passphrase from "
    "$COSIGN_PASSWORD): cosign signatures and attestations on oci://, SHA256SUMS.sig elsewhere",
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


def _quiet_threads() -> None:
    """After a stop, threads still winding down (GitPython's output pumps, reading a git
    process the stop just killed) may fail on closed pipes: that is the stop, already said in
    the exit line, not something to print after it."""
    threading.excepthook = lambda args: None


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
            _quiet_threads()
            raise Exit(f"longcert: stopped by {stop}", code=128 + stop.signum) from None
        except KeyboardInterrupt:
            _quiet_threads()
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
    return {k: v for k, v in task_locals.items() if k not in ("c", "version", "debug", "verbose")}


def _settings(**values: Any) -> Any:
    from longcert import settings

    return settings.load(_flags(**values))


def _run(
    version: str | None, until: str, dry_run: bool = False, verbose: bool = False, **values: Any
) -> Any:
    from longcert import pipeline
    from longcert.progress import Reporter

    if not version:
        raise errors.ConfigError("--version is required", "e.g. --version v1.9.4")
    reporter = Reporter(verbose=verbose)
    result = pipeline.run(version, _settings(**values), reporter, until=until, dry_run=dry_run)
    return reporter, result


COMMON = ("repo", "years", "ca_years", "cache_dir", "keep_worktree", "verbose", "debug")
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
