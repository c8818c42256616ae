"""Which target a text names (:func:`parse_target`, :func:`open_target`), and the entry points
that push a loaded build to it (:func:`push`, and :func:`publish_directory` for `invoke publish`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from longcert.errors import ConfigError
from longcert.progress import short_hash
from longcert.publish.build import Build, load_build
from longcert.publish.credentials import gh_hostname, gh_token, registry_credentials
from longcert.publish.directory import DirectoryTarget
from longcert.publish.github import GH_SOURCE, TOKEN_ENV, GitHubTarget
from longcert.publish.http import RetryPolicy
from longcert.publish.oci import OciTarget, image_references
from longcert.publish.plan import PublishResult, Target, human_size
from longcert.publish.runcheck import NO_RUN_CHECK_FLAG, check_binaries_run
from longcert.publish.signing import SUMS_SIGNATURE, load_signer, signed_sums

if TYPE_CHECKING:
    from longcert.progress import Reporter
    from longcert.settings import Settings

TARGET_FORMS = "a directory (PATH or dir:PATH), github:OWNER/REPO or oci://HOST[:PORT]/REPOSITORY"


_GITHUB = re.compile(r"github:([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/([A-Za-z0-9._-]{1,100})")
_OCI = re.compile(
    r"oci://((?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::\d{1,5})?)/"
    r"([a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
)


def retry_policy(settings: Settings) -> RetryPolicy:
    """The publish_retries and publish_retry_seconds settings as the targets' RetryPolicy."""
    return RetryPolicy(
        retries=settings.publish_retries, budget=float(settings.publish_retry_seconds)
    )


def parse_target(text: str, settings: Settings, environ: Mapping[str, str] | None = None) -> Target:
    """A target from its text form (see TARGET_FORMS); ConfigError for anything else.

    A GitHub token comes from GITHUB_TOKEN, else from ``gh auth token`` for the API's host; a
    registry's credentials are looked up (OCI_USERNAME/OCI_PASSWORD, the Docker config and its
    credential helpers) only when the registry asks for them."""
    env = os.environ if environ is None else environ
    value = text.strip()
    signer = load_signer(Path(settings.sign_key), env) if settings.sign_key else None
    if not value:
        raise ConfigError("no publish target given", f"give {TARGET_FORMS}")
    if value.startswith("github:"):
        match = _GITHUB.fullmatch(value)
        if not match:
            raise ConfigError(
                f"publish target {value!r} is not github:OWNER/REPO",
                "e.g. github:example/kubeadm-builds",
            )
        token, source = env.get(TOKEN_ENV), TOKEN_ENV
        if not token:
            token, source = gh_token(settings.github_api_url, env), GH_SOURCE
        return GitHubTarget(
            match.group(1),
            match.group(2),
            settings.github_api_url,
            token,
            token_source=source,
            retry=retry_policy(settings),
            signer=signer,
        )
    if value.startswith("oci://"):
        match = _OCI.fullmatch(value.rstrip("/"))
        if not match:
            raise ConfigError(
                f"publish target {value!r} is not oci://HOST[:PORT]/REPOSITORY",
                "the repository is lower-case, e.g. oci://registry.example:5000/tools/kubeadm",
            )
        host = match.group(1)
        return OciTarget(
            host,
            match.group(2),
            insecure=settings.oci_insecure,
            credentials=lambda: registry_credentials(host, env),
            retry=retry_policy(settings),
            signer=signer,
        )
    if value.startswith("dir:"):
        value = value.removeprefix("dir:")
        if not value:
            raise ConfigError("publish target 'dir:' names no directory", "e.g. dir:/srv/kubeadm")
    elif re.match(r"^[^/:]+:\d+/", value):  # HOST:PORT/REPOSITORY
        _refuse_registry_lookalike(value)
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value) and not re.match(r"^[A-Za-z]:[\\/]", value):
        scheme = value.split(":", 1)[0]
        raise ConfigError(
            f"unknown publish target kind {scheme!r} in {value!r}", f"give {TARGET_FORMS}"
        )
    else:
        _refuse_registry_lookalike(value)
    return DirectoryTarget(Path(value).expanduser().absolute(), signer)


def _refuse_registry_lookalike(value: str) -> None:
    """A bare target like docker.io/me/kubeadm or registry:5000/tools/kubeadm (a host with a
    dot, a port or localhost first, then a repository) is a registry meant as oci://, unless a
    directory of that first name exists here; dir: forces a directory."""
    first, sep, rest = value.partition("/")
    looks_like_host = first not in (".", "..", "~") and not first.startswith("~") and (
        "." in first or re.fullmatch(r"[^:]+:\d+", first) is not None or first == "localhost")
    if sep and rest and looks_like_host and not Path(first).exists():
        raise ConfigError(
            f"publish target {value!r} looks like a registry repository, not a directory",
            f"for a registry give oci://{value}; for a directory of that name, dir:{value}",
        )


def open_target(
    text: str, settings: Settings, *, dry_run: bool, environ: Mapping[str, str] | None = None
) -> Target:
    """parse_target, and refuse (before any build) a GitHub target without a token."""
    target = parse_target(text, settings, environ)
    if isinstance(target, GitHubTarget) and not target.has_token and not dry_run:
        raise ConfigError(
            f"{target.name} needs a token in the {TOKEN_ENV} environment variable, or from "
            f"{GH_SOURCE}",
            "in GitHub Actions: env GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }} and "
            "permissions contents: write; elsewhere also `gh auth login --hostname "
            f"{gh_hostname(settings.github_api_url)}` with gh on PATH",
        )
    return target


def push(
    build: Build, target: Target, reporter: Reporter, *, dry_run: bool = False
) -> PublishResult:
    """Publish one loaded build to one target, reporting each action."""
    with reporter.stage(f"publish {'(dry run) ' if dry_run else ''}to {target.name}"), \
            signed_sums(build, None if isinstance(target, OciTarget) else target.signer) as build:
        if target.signer is not None:
            reporter.step(f"signing with key {target.signer.keyid[:16]} ({SUMS_SIGNATURE} for "
                          "files, cosign signatures for images)")
        result = target.push(build, dry_run=dry_run, progress=reporter.step)
        if not result.changed:
            reporter.step(f"nothing to publish: {target.name} already has {build.build_id}")
        elif dry_run:
            reporter.step(f"dry run: {result.changed} action(s) not carried out")
    return result


def oci_references(
    build_dir: str | Path | None, text: str | None, settings: Settings
) -> list[tuple[str, str, str]]:
    """`invoke oci-refs`: the references of a build's images in an oci:// target (see
    :func:`longcert.publish.oci.image_references`)."""
    if not build_dir:
        raise ConfigError(
            "--build is required", "e.g. --build builds/kubeadm-v1.33.7-leaf10y-ca10y"
        )
    target = parse_target(text or "", settings, {})
    if not isinstance(target, OciTarget):
        raise ConfigError(f"--publish {text!r} is not an oci:// target",
                          "give oci://HOST[:PORT]/REPOSITORY")
    return image_references(load_build(Path(build_dir)), target)


def publish_directory(
    build_dir: str | Path | None,
    settings: Settings,
    reporter: Reporter,
    *,
    dry_run: bool,
    run_check: bool = True,
) -> PublishResult:
    """`invoke publish`: load and check the build, open the target, run each binary (unless
    ``run_check`` is False: --no-run-check), push, print a summary."""
    if not build_dir:
        raise ConfigError(
            "--build is required", "e.g. --build builds/kubeadm-v1.33.7-leaf10y-ca10y"
        )
    if not settings.publish:
        raise ConfigError("--publish is required", f"give {TARGET_FORMS}")
    build = load_build(Path(build_dir))
    target = open_target(settings.publish, settings, dry_run=dry_run)
    with reporter.stage("run each binary before publishing"):
        if run_check:
            check_binaries_run(build, image=settings.run_image, cache_dir=settings.cache_dir,
                               progress=reporter.step)
        else:
            reporter.step(f"binaries not run ({NO_RUN_CHECK_FLAG}): only their sha256 and "
                          "executable headers were checked")
    result = push(build, target, reporter, dry_run=dry_run)
    sums = {f.name: f.sha256 for f in build.files}
    rows = []
    for action in result.actions:  # files for a directory or release, blobs for a registry
        state = f"would {action.verb}" if dry_run and action.verb != "skip" else action.verb
        size = human_size(action.size) if action.size else "-"
        rows.append([action.name, size, short_hash(sums.get(action.name, "-")), state])
    verb = "would publish" if dry_run else "published"
    if not result.changed:
        verb = "already published"
    unrun = "" if run_check else f" (binaries not run: {NO_RUN_CHECK_FLAG})"
    reporter.summary(
        f"{verb} {build.build_id} to {result.location}{unrun}", rows,
        ["file", "size", "sha256", "action"],
    )
    return result
