"""Compile kubeadm the way upstream does, inside the builder container, with no network.

``plan`` decides everything from the tree and settings (pure: no daemon); ``compile`` runs it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longcert import container
from longcert.errors import BuildError
from longcert.image import ImageChoice, Toolbox, write_shims
from longcert.source import SourceTree
from longcert.versions import GoVersion, KubeVersion, has_go_mod

# Where the tree is mounted: the GOPATH location upstream's own build container uses, which
# pre-module trees (before v1.15) need and later trees accept.
TREE_MOUNT = "/go/src/k8s.io/kubernetes"
META_MOUNT = "/longcert/meta"
BUILD_CACHE_MOUNT = "/gocache/build"
MODULE_CACHE_MOUNT = "/gocache/mod"
# Verification executes this platform's binary, so it is always built.
VERIFY_PLATFORM = "linux/amd64"

LineFn = Callable[[str], None]


@dataclass(frozen=True)
class BuildPlan:
    """Everything the compile step does, decided before any container starts."""

    image: str
    go: GoVersion
    choice: ImageChoice
    toolbox: Toolbox
    platforms: tuple[str, ...]  # what the user asked for
    build_platforms: tuple[str, ...]  # plus VERIFY_PLATFORM
    argv: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]
    version_file: str  # contents of the KUBE_GIT_VERSION_FILE
    user: str  # uid:gid the build runs as, so nothing in the tree ends up owned by root

    def output_path(self, platform: str) -> str:
        """Where upstream's make puts the binary, relative to the tree."""
        goos, goarch = platform.split("/")
        name = "kubeadm.exe" if goos == "windows" else "kubeadm"
        return f"_output/local/bin/{goos}/{goarch}/{name}"


@dataclass(frozen=True)
class CacheVolumes:
    """The named volumes the compile keeps Go's build and module caches in."""

    build: str
    module: str
    fresh: bool  # made for this build and removed after it (--no-cache)
    scope: str  # what shares them: "remote <url>", "every remote" or "this build"

    def describe(self) -> str:
        return f"Go caches {self.build}, {self.module} ({self.scope})"


def remote_key(remote: str) -> str:
    """Who a cache belongs to: the remote without scheme case, credentials, ``.git`` or "/"."""
    text = remote.strip().rstrip("/").removesuffix(".git").rstrip("/")
    scheme, sep, rest = text.partition("://")
    return f"{scheme.lower()}://{rest}" if sep else text


def note_cache_volumes(cache_dir: Path, caches: CacheVolumes) -> None:
    """Remember in ``<cache>/go-caches/`` the Go cache volumes a build from this cache directory
    used, so `longcert clean --go-caches` removes those and no other job's."""
    if caches.fresh:
        return  # removed after the build anyway
    folder = cache_dir / GO_CACHES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name in (caches.build, caches.module):
        (folder / name).touch()


def noted_cache_volumes(cache_dir: Path) -> set[str]:
    """The volume names :func:`note_cache_volumes` recorded for ``cache_dir``."""
    folder = cache_dir / GO_CACHES_DIR
    return {p.name for p in folder.iterdir() if p.is_file()} if folder.is_dir() else set()


def forget_cache_volumes(cache_dir: Path, names: Iterable[str]) -> None:
    for name in names:
        (cache_dir / GO_CACHES_DIR / name).unlink(missing_ok=True)


GO_CACHES_DIR = "go-caches"


def cache_volumes(
    build_volume: str, module_volume: str, *, remote: str, shared: bool, fresh_id: str | None
) -> CacheVolumes:
    """The cache volumes for a build of ``remote`` (pure). Each remote gets volumes of its own
    (the configured names plus a hash of the remote), so a tree from an untrusted remote cannot
    poison what builds of upstream reuse; ``shared`` (a volume name the user gave) uses the
    names as they are; ``fresh_id`` (--no-cache) makes new volumes for this build alone."""
    if fresh_id is not None:
        return CacheVolumes(
            f"longcert-fresh-{fresh_id}-build", f"longcert-fresh-{fresh_id}-mod", True,
            "this build",
        )
    if shared:
        return CacheVolumes(build_volume, module_volume, False, "every remote")
    key = remote_key(remote)
    suffix = hashlib.sha256(key.encode()).hexdigest()[:12]
    return CacheVolumes(
        f"{build_volume}-{suffix}", f"{module_volume}-{suffix}", False, f"remote {key}"
    )


@dataclass(frozen=True)
class Artifact:
    """One built binary."""

    platform: str
    path: Path
    size: int
    sha256: str

    @property
    def file_name(self) -> str:
        goos, goarch = self.platform.split("/")
        return f"kubeadm-{goos}-{goarch}" + (".exe" if goos == "windows" else "")


@dataclass(frozen=True)
class BuildResult:
    """The compile step's outcome: artifacts (asked platforms only) and what built them."""

    artifacts: tuple[Artifact, ...]
    verify_binary: Path
    image: str
    image_id: str
    go: GoVersion
    log_path: Path
    choice: ImageChoice | None = None
    toolbox: Toolbox | None = None
    argv: tuple[str, ...] = ()  # the make command, as run
    environment: tuple[tuple[str, str], ...] = ()  # and its environment
    modules: tuple[tuple[str, str], ...] = ()  # (platform, `go version -m` output)
    caches: CacheVolumes | None = None


def version_file(version: KubeVersion, commit: str) -> str:
    """KUBE_GIT_VERSION_FILE contents: the exact tag (no ``-dirty``), honest tree state.

    hack/lib/version.sh sources this file and skips git entirely, so ``kubeadm version`` reports
    the tag and its commit, while gitTreeState says the source was modified. kubeadm derives its
    default image tags from its own version, so a ``-dirty`` suffix would break them.
    """
    minor = f"{version.minor}+" if version.pre else str(version.minor)
    return (
        f"KUBE_GIT_COMMIT='{commit}'\n"
        "KUBE_GIT_TREE_STATE='dirty'\n"
        f"KUBE_GIT_VERSION='{version.tag}'\n"
        f"KUBE_GIT_MAJOR='{version.major}'\n"
        f"KUBE_GIT_MINOR='{minor}'\n"
    )


def plan(
    tree: SourceTree,
    version: KubeVersion,
    platforms: tuple[str, ...],
    choice: ImageChoice,
    toolbox: Toolbox,
) -> BuildPlan:
    """Environment and make command for this tree in the chosen (and assessed) image."""
    go = choice.go
    build_platforms = platforms if VERIFY_PLATFORM in platforms else (*platforms, VERIFY_PLATFORM)
    env = {
        # No network and no toolchain download: use the image's Go whatever .go-version says
        # (hack/lib/golang.sh otherwise fetches one with gimme or GOTOOLCHAIN), and never fall
        # back to a module proxy: every dependency is vendored.
        "FORCE_HOST_GO": "y",
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "GOFLAGS": "",
        "GOCACHE": BUILD_CACHE_MOUNT,
        "GOMODCACHE": MODULE_CACHE_MOUNT,
        "HOME": "/tmp",
        "KUBE_GIT_VERSION_FILE": f"{META_MOUNT}/version.env",
        "SOURCE_DATE_EPOCH": str(tree.commit_time),
        # hack/lib/golang.sh reads `GO_VERSION="${GO_VERSION:-"$(cat .go-version)"}"` (v1.28+):
        # naming the Go here keeps a tree whose import dropped the dotfile buildable.
        "GO_VERSION": go.version,
        **toolbox.environment,
    }
    if not has_go_mod(tree.path):
        # Trees before v1.15 have no go.mod; Go >= 1.16 would otherwise insist on module mode.
        env["GO111MODULE"] = "off"
    argv = ("make", "all", "WHAT=cmd/kubeadm", f"KUBE_BUILD_PLATFORMS={' '.join(build_platforms)}")
    return BuildPlan(
        image=choice.image,
        go=go,
        choice=choice,
        toolbox=toolbox,
        platforms=platforms,
        build_platforms=build_platforms,
        argv=argv,
        environment=tuple(sorted(env.items())),
        version_file=version_file(version, tree.commit),
        user=f"{os.getuid()}:{os.getgid()}",
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compile_kubeadm(
    build: BuildPlan,
    tree: SourceTree,
    *,
    meta_dir: Path,
    log_path: Path,
    caches: CacheVolumes,
    on_line: LineFn | None = None,
    limits: container.Limits | None = None,
) -> BuildResult:
    """Run ``make all WHAT=cmd/kubeadm`` in the builder container; collect the binaries."""
    meta_dir.mkdir(parents=True, exist_ok=True)
    (meta_dir / "version.env").write_text(build.version_file)
    write_shims(build.toolbox, meta_dir)
    client = container.connect()
    mounts = [
        container.BindMount(TREE_MOUNT, str(tree.path)),
        container.BindMount(META_MOUNT, str(meta_dir), read_only=True),
        container.BindMount(BUILD_CACHE_MOUNT, caches.build, volume=True),
        container.BindMount(MODULE_CACHE_MOUNT, caches.module, volume=True),
    ]
    if caches.fresh:
        container.create_volume(client, caches.build, "go-build-cache")
        container.create_volume(client, caches.module, "go-module-cache")
    try:
        built = _compile_in(build, tree, client, mounts, log_path, on_line, limits)
        return dataclasses.replace(built, caches=caches)
    finally:
        if caches.fresh:
            container.remove_volume(client, caches.build)
            container.remove_volume(client, caches.module)


def _compile_in(
    build: BuildPlan,
    tree: SourceTree,
    client: Any,  # a docker client; only container.py imports docker
    mounts: list[container.BindMount],
    log_path: Path,
    on_line: LineFn | None,
    limits: container.Limits | None,
) -> BuildResult:
    labels = {"org.longcert.purpose": "build", "org.longcert.tag": tree.tag}
    with container.BuildContainer(
        client,
        build.choice.image_id,  # by id: a digest reference pulled through a mirror has no name
        mounts=mounts,
        labels=labels,
        log_path=log_path,
        limits=limits,
        user=build.user,
    ) as box:
        # Fresh named volumes belong to root: open them to the unprivileged build user.
        box.check(
            ["chmod", "1777", BUILD_CACHE_MOUNT, MODULE_CACHE_MOUNT],
            what="preparing the cache volumes",
            user="0:0",
        )
        code = box.run(
            list(build.argv),
            user=build.user,
            workdir=TREE_MOUNT,
            environment=dict(build.environment),
            on_line=on_line,
        )
        if code != 0:
            tail = "\n".join(box.tail[-20:])
            raise BuildError(
                f"make all WHAT=cmd/kubeadm failed for {tree.tag} with Go {build.go.version} "
                f"(exit {code}); full log: {log_path}\n{tail}"
            )
        modules = _recorded_modules(box, build)
    artifacts = []
    for platform in build.build_platforms:
        binary = tree.path / build.output_path(platform)
        if not binary.is_file():
            raise BuildError(
                f"make succeeded but {build.output_path(platform)} is missing", f"see {log_path}"
            )
        if platform in build.platforms:  # VERIFY_PLATFORM alone is not packaged
            artifacts.append(Artifact(platform, binary, binary.stat().st_size, sha256_file(binary)))
    return BuildResult(
        artifacts=tuple(artifacts),
        verify_binary=tree.path / build.output_path(VERIFY_PLATFORM),
        image=build.image,
        image_id=build.choice.image_id,
        go=build.go,
        log_path=log_path,
        choice=build.choice,
        toolbox=build.toolbox,
        argv=build.argv,
        environment=build.environment,
        modules=modules,
    )


def _recorded_modules(
    box: container.BuildContainer, build: BuildPlan
) -> tuple[tuple[str, str], ...]:
    """``go version -m`` of each asked binary (all at once), run by the Go that built it (for
    the SBOM): (platform, output); the output is empty where that Go has no ``-m`` (before Go
    1.13)."""
    results = box.capture_together(
        [["go", "version", "-m", f"{TREE_MOUNT}/{build.output_path(platform)}"]
         for platform in build.platforms],
        user=build.user,
        workdir=TREE_MOUNT,
        environment=dict(build.environment),
    )
    return tuple(
        (platform, output if code == 0 else "")
        for platform, (code, output) in zip(build.platforms, results, strict=True)
    )
