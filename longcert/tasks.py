"""longcert tasks: build kubeadm with the certificate lifetime you choose, and prove it.

Each task parses its flags, makes one call into the longcert package and turns its errors into
exit codes (see `invoke errors`). Flags are taken as text and validated by longcert itself, so a
bad value is a one-line error, never a traceback.
"""

from __future__ import annotations

import sys

from invoke.collection import Collection
from invoke.context import Context

from longcert import upkeep
from longcert.taskbase import (
    BUILD,
    RANGE_HELP,
    VERSION_HELP,
    _help,
    _run,
    _settings,
    _settings_flags,
    cli,
    task,
)
from longcert.taskbase import OLD_FLAGS as OLD_FLAGS
from longcert.taskbase import OLD_FLAGS_UNTIL as OLD_FLAGS_UNTIL
from longcert.taskbase import SETTING_HELP as SETTING_HELP


@task(
    auto_shortflags=False,
    help=_help(
        *BUILD,
        "builds_dir",
        "force",
        "publish",
        "github_api_url",
        "oci_insecure",
        "sign_key",
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
    sign_key: str | None = None,
    verbose: bool = False,
    debug: bool = False,
) -> None:
    """Fetch, patch, compile, verify and package kubeadm into builds/<id>/; --publish it."""
    flags = _settings_flags(locals())
    from longcert import pipeline

    reporter, result = _run(version, "package", verbose=verbose, **flags)
    done = "up to date" if pipeline.up_to_date(result) else "built"
    reporter.summary(
        f"{done} {result.output.path}"
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
        "no_run_check": "publish without running each Linux binary's `version` first (it "
        "needs a Docker engine); the sha256 and executable-header checks still apply",
        "github_api_url": SETTING_HELP["github_api_url"],
        "oci_insecure": SETTING_HELP["oci_insecure"],
        "sign_key": SETTING_HELP["sign_key"],
        "debug": SETTING_HELP["debug"],
    },
)
@cli
def publish(
    c: Context,
    build: str | None = None,
    publish: str | None = None,
    dry_run: bool = False,
    no_run_check: bool = False,
    github_api_url: str | None = None,
    oci_insecure: bool = False,
    sign_key: str | None = None,
    debug: bool = False,
) -> None:
    """Publish a verified build to a directory, a GitHub release or an OCI registry.

    Before anything is uploaded, each Linux binary runs in a container of the run_image
    setting (`kubeadm version` must say the build's tag): that needs a Docker engine, or
    --no-run-check.
    """
    from longcert import pipeline, runs
    from longcert import publish as publish_mod
    from longcert.progress import Reporter

    conf = _settings(publish=publish, github_api_url=github_api_url,
                     oci_insecure=oci_insecure, sign_key=sign_key)
    reporter = Reporter()
    # a run like any other: what it stages carries its id, and what a killed one left goes
    with runs.registered(conf.cache_dir):
        pipeline.sweep(conf.cache_dir, reporter.step)
        publish_mod.publish_directory(build, conf, reporter, dry_run=dry_run,
                                      run_check=not no_run_check)


@task(
    auto_shortflags=False,
    help=_help(
        *BUILD,
        "builds_dir",
        "force",
        "github_api_url",
        "oci_insecure",
        "sign_key",
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
    sign_key: str | None = None,
    force: bool = False,
    keep_worktree: bool = False,
    dry_run: bool = False,
    verbose: bool = False,
    debug: bool = False,
) -> None:
    """Build, verify and publish every selected version the target lacks; print a table.

    One version failing does not stop the others; the exit code is non-zero if any failed.
    """
    flags = _settings_flags(locals())
    selection = {k: flags.pop(k) for k in ("versions", "from_", "to", "dry_run")}
    from longcert import release as release_mod
    from longcert import runs
    from longcert.progress import Reporter

    conf = _settings(**flags)
    with runs.registered(conf.cache_dir):  # its publishing stages under its run id too
        release_mod.run(
            conf,
            Reporter(verbose=verbose),
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


@task(
    auto_shortflags=False,
    help=_help("repo", "cache_dir", "verbose", "debug", version=VERSION_HELP),
)
@cli
def fetch(
    c: Context,
    version: str | None = None,
    repo: str | None = None,
    cache_dir: str | None = None,
    verbose: bool = False,
    debug: bool = False,
) -> None:
    """Fetch one tag (shallow) into the mirror cache and check it out, then clean up."""
    _run(version, "fetch", verbose=verbose, **_settings_flags(locals()))


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
        "verbose",
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
    verbose: bool = False,
    debug: bool = False,
) -> None:
    """Fetch and patch a tag, and print the diff (--dry-run: do not apply it)."""
    flags = _settings_flags(locals())
    _, result = _run(version, "patch", dry_run=flags.pop("dry_run"), verbose=verbose, **flags)
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
    verbose: bool = False,
    debug: bool = False,
) -> None:
    """Fetch, patch and compile kubeadm without verifying or packaging (use --keep-worktree)."""
    _, result = _run(version, "compile", verbose=verbose, **_settings_flags(locals()))
    for artifact in result.build.artifacts:
        print(f"{artifact.platform}  {artifact.path}  {artifact.sha256}")


@task(
    auto_shortflags=False,
    help={
        "binary": "(required) path of a kubeadm binary (linux runs natively or under qemu; "
        "darwin and windows get a header check only)",
        "version": "the tag the binary must report, e.g. v1.28.7 (default: the tag of the "
        "manifest.json beside the binary, which must list its sha256; required without one)",
        "years": SETTING_HELP["years"],
        "ca_years": SETTING_HELP["ca_years"],
        "run_image": SETTING_HELP["run_image"],
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

    conf = _settings(years=years, ca_years=ca_years, run_image=run_image)
    # without --version the release's manifest.json says what the binary must be
    version, leaf_years, expected_ca_years, pinned = verify_mod.expectation(
        binary, version, conf, pinned=pin_validity)
    if ca_dir:
        from longcert import ca as ca_mod

        with runs.registered(conf.cache_dir):
            ca_mod.verify_with_ca(binary, version, leaf_years, ca_dir, image=conf.run_image,
                                  json_path=json, pinned=pinned)
        return
    with runs.registered(conf.cache_dir):
        verify_mod.check_file(
            binary,
            version,
            leaf_years,
            expected_ca_years,
            image=conf.run_image,
            json_path=json,
            pinned=pinned,
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
        "run_image": SETTING_HELP["run_image"],
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

    conf = _settings(run_image=run_image)
    with runs.registered(conf.cache_dir):
        renewcheck.check(binary, etc, years, config=config, image=conf.run_image, json_path=json)


@task(
    auto_shortflags=False,
    help={
        "build": "(required) a verified build directory, builds/<id> as `longcert build` "
        "wrote it",
        "image_repository": "registry the cluster pulls its images from (HOST[:PORT][/PATH]): "
        "set as imageRepository in the kit's cluster configuration, and its images listed "
        "(`kubeadm config images list`, run offline with the build's binary) for mirroring",
        "install_path": "where install.sh puts kubeadm (default /usr/bin/kubeadm)",
        "run_image": SETTING_HELP["run_image"],
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

    conf = _settings(run_image=run_image)
    with runs.registered(conf.cache_dir):
        kit_mod.make_kit(build, image_repository, install_path, image=conf.run_image,
                         serving_rotation=serving_rotation)


@task(
    auto_shortflags=False,
    help={
        "build": "(required) the build directory, e.g. builds/kubeadm-v1.33.7-leaf10y-ca10y",
        "publish": "(required) the oci://HOST[:PORT]/REPOSITORY it is (or will be) published to",
        "debug": SETTING_HELP["debug"],
    },
)
@cli
def oci_refs(
    c: Context, build: str | None = None, publish: str | None = None, debug: bool = False
) -> None:
    """Print the index's and each platform image's HOST/REPO@DIGEST (and SBOM) for cosign.

    One line each, tab-separated: "index" or the platform, the reference, the SBOM file ("-"
    for the index). Computed from the build alone; nothing is sent to the registry."""
    from longcert import publish as publish_mod

    for row in publish_mod.oci_references(build, publish, _settings(publish=publish)):
        print("\t".join(row))


@task(auto_shortflags=False, help={"debug": SETTING_HELP["debug"]})
@cli
def demo(c: Context, debug: bool = False) -> None:
    """Offline demo: build and verify kubeadm from the bundled stand-in Kubernetes tree."""
    from longcert import demo as demo_mod

    demo_mod.run()


def _namespace() -> Collection:
    """Every task of this module, and the upkeep tasks (longcert/upkeep.py), in one namespace."""
    collection = Collection.from_module(sys.modules[__name__])
    for upkeep_task in Collection.from_module(upkeep).tasks.values():
        collection.add_task(upkeep_task)
    return collection


# The task namespace `invoke` (through the checkout's tasks.py) and the installed `longcert`
# command (longcert/program.py) both run.
namespace = _namespace()
