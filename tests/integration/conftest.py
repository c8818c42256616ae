"""Integration tests: a real Docker engine, real git, the stand-in Kubernetes trees."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from longcert.package import build_id
from tests import local_registry
from tests.cli import ROOT, invoke_environ, run_invoke
from tests.fixtures import standin

TEST_GO = os.environ.get("TEST_GO_VERSION", "1.24.11")
# The other builder image .ci/run makes: the Go the newest stand-in release (v1.38.0) names.
NEWEST_GO = "1.27.1"
TEST_IMAGE = f"golang:{TEST_GO}"

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"integration tests need a Docker engine (bash .ci/run starts one): {exc}")
    try:
        client.images.get(TEST_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{TEST_IMAGE} is missing: run `invoke builder-image --go-version {TEST_GO}`")
    return client


@pytest.fixture(scope="session", autouse=True)
def session_cache_volumes() -> Iterator[None]:
    """The Go cache volumes builds make per remote (the session's stand-in repositories live
    in temporary paths, so each session has its own): removed when the session ends."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        yield  # no engine: no volumes (the docker tests say so themselves)
        return

    def ours() -> set[str]:
        return {v.name for v in client.volumes.list()
                if v.name.startswith(("longcert-go-build-", "longcert-go-mod-"))}

    before = ours()
    yield
    for name in ours() - before:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.volumes.get(name).remove(force=True)


@pytest.fixture(scope="session")
def standin_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return standin.make_standin_repo(tmp_path_factory.mktemp("standin") / "kubernetes")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mirror cache for the session, as a user's machine would have."""
    return tmp_path_factory.mktemp("cache")


def declared_go(repo: Path, tag: str) -> str:
    """The Go version the stand-in tag's tree names (.go-version or cross/VERSION)."""
    from longcert.versions import go_from_cross_version

    for path in (".go-version", "build/build-image/cross/VERSION"):
        shown = subprocess.run(["git", "-C", str(repo), "show", f"{tag}:{path}"],
                               capture_output=True, text=True, check=False)
        if shown.returncode == 0:
            text = shown.stdout.strip()
            return text if path == ".go-version" else (go_from_cross_version(text) or "")
    return ""


def go_flags(repo: Path, tag: str, present: tuple[str, ...] = (TEST_GO, NEWEST_GO)
             ) -> list[str]:
    """Pin the test Go only where the tree asks for a Go this machine has no image of."""
    return [] if declared_go(repo, tag) in present else ["--go-version", TEST_GO]


@pytest.fixture
def cli(tmp_path: Path, shared_cache: Path, engine: docker.DockerClient) -> Cli:
    """Run `invoke <args>` like a user, with builds/ in this test's tmp dir."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = run_invoke(*args, cwd=tmp_path, timeout=1800, env={
            "LONGCERT_CACHE_DIR": str(shared_cache),
            "LONGCERT_BUILDS_DIR": str(tmp_path / "builds"),
            **(env or {}),
        })
        print(result.stdout[-4000:], result.stderr[-4000:])
        return result

    return run


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_registry.LocalRegistry]:
    """A real OCI registry (Debian's docker-registry) on 127.0.0.1, for the whole session."""
    try:
        server = local_registry.start(tmp_path_factory.mktemp("registry"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    local_registry.stop(server)


STOCK_REPOSITORY = "longcert-stock/golang"


@pytest.fixture(scope="session")
def stock(engine: docker.DockerClient, registry: local_registry.LocalRegistry) -> Iterator[str]:
    """``<registry>/longcert-stock/golang:{go_version}``: an official-shaped golang image (no
    rsync) for TEST_GO, only in the local registry that stands in for Docker Hub; pulled
    through --registry-mirror by the first test that needs it."""
    from tests import stock_image

    remote = f"{registry.host}/{STOCK_REPOSITORY}:{TEST_GO}"
    stock_image.make(engine, TEST_IMAGE, remote, go_version=TEST_GO)
    try:
        # Docker treats registries on 127.0.0.0/8 as plain-HTTP registries, no daemon setup.
        for line in engine.images.push(remote, stream=True, decode=True):
            assert "error" not in line, line
    finally:
        stock_image.remove(engine, remote, f"{STOCK_REPOSITORY}:{TEST_GO}")
    yield f"{registry.host}/{STOCK_REPOSITORY}:{{go_version}}"
    # what the pulls left: the mirror's name (and digest) and the name the pipeline gave it
    stock_image.remove(engine, f"{STOCK_REPOSITORY}:{TEST_GO}", remote)
    for image in engine.images.list(name=f"{registry.host}/{STOCK_REPOSITORY}"):
        stock_image.remove(engine, image.id)


class EraBuilds:
    """``era_build(tag, years=10, ca_years=10, image="auto") -> Path``: the ``builds/<id>``
    directory of ``invoke build --version TAG --years YEARS --ca-years CA_YEARS`` on the stand-in
    repo, made at most once per session and shared by every test that asks for the same
    arguments (test_build_every_era, the kit, ca and renew-check tests). ``image="stock"`` builds
    with the stock-shaped golang image from the local registry through --registry-mirror;
    ``"auto"`` with the local builder image (both pin TEST_GO where the tree names another
    Go). Treat the directory as read-only: copy it
    (``shutil.copytree``) before writing into it. ``stdout(path)`` is what the build printed."""

    def __init__(self, root: Path, standin_repo: Path, shared_cache: Path) -> None:
        self._root = root
        self._standin_repo = standin_repo
        self._shared_cache = shared_cache
        self._made: dict[tuple[str, int, int, str], subprocess.CompletedProcess[str]] = {}
        self._stdout: dict[Path, str] = {}
        self.request: pytest.FixtureRequest | None = None  # the asking test's, for `stock`

    def __call__(self, tag: str, years: int = 10, ca_years: int = 10,
                 image: str = "auto") -> Path:
        if image not in ("auto", "stock"):
            raise ValueError(f"image must be 'auto' or 'stock', not {image!r}")
        key = (tag, years, ca_years, image)
        workdir = self._root / f"{tag}-{years}-{ca_years}-{image}"
        out = workdir / "builds" / build_id(tag, years, ca_years)
        if key not in self._made:
            # This machine has TEST_GO only: a tree asking for another Go is built with it
            # through --go-version (auto never chooses a Go above the minor's ceiling, and
            # TEST_GO is above the ceiling of every stand-in minor older than v1.33).
            flags = go_flags(self._standin_repo, tag)
            if image == "stock":
                assert self.request is not None
                mirror, template = self.request.getfixturevalue("stock").split("/", 1)
                # the registry has the stock image of TEST_GO only
                flags = [*go_flags(self._standin_repo, tag, present=(TEST_GO,)),
                         "--image", template, "--registry-mirror", mirror]
            workdir.mkdir(parents=True, exist_ok=True)
            result = run_invoke(
                "build", "--version", tag, "--years", str(years), "--ca-years", str(ca_years),
                "--repo", str(self._standin_repo), *flags, cwd=workdir, timeout=1800,
                env={"LONGCERT_CACHE_DIR": str(self._shared_cache),
                     "LONGCERT_BUILDS_DIR": str(workdir / "builds")})
            print(result.stdout[-4000:], result.stderr[-4000:])
            self._made[key] = result
            self._stdout[out] = result.stdout
        result = self._made[key]
        if result.returncode != 0:
            pytest.fail(f"era_build{key} failed ({result.returncode}): {result.stderr[-2000:]}")
        return out

    def stdout(self, path: Path) -> str:
        """What ``invoke build`` printed when it made ``path``."""
        return self._stdout[path]


@pytest.fixture(scope="session")
def _era_builds(tmp_path_factory: pytest.TempPathFactory, engine: docker.DockerClient,
                standin_repo: Path, shared_cache: Path) -> EraBuilds:
    return EraBuilds(tmp_path_factory.mktemp("era-builds"), standin_repo, shared_cache)


@pytest.fixture
def era_build(_era_builds: EraBuilds, request: pytest.FixtureRequest) -> EraBuilds:
    """The session's memoizing builder of stand-in builds (see EraBuilds): same arguments, same
    build directory, made once."""
    _era_builds.request = request
    return _era_builds


@dataclass(frozen=True)
class RealBuild:
    path: Path  # builds/<id>
    share: Path  # where `invoke build --publish dir:...` put it
    workdir: Path
    build_stdout: str
    env: dict[str, str]

    def invoke(self, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "invoke", "-r", str(ROOT), *args],
                                capture_output=True, text=True, env={**self.env, **(env or {})},
                                cwd=self.workdir, check=False, timeout=1800)
        print(result.stdout[-3000:], result.stderr[-3000:])
        return result

    def sums(self) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in self.path.iterdir()
                if p.name.startswith("kubeadm-") and not p.name.endswith(".spdx.json")}


# The one multi-platform build of the session: linux/arm64 runs under qemu once, for every test
# that needs a foreign or non-Linux binary (publish, verify, packaging).
MULTI_PLATFORMS = ("linux/amd64", "linux/arm64", "windows/amd64")


@pytest.fixture(scope="session")
def real_build(tmp_path_factory: pytest.TempPathFactory, engine: docker.DockerClient,
               standin_repo: Path, shared_cache: Path) -> RealBuild:
    """`invoke build --version DEMO_TAG --years 7 --platforms MULTI_PLATFORMS --publish
    dir:share`, once for the session: the build and the directory target."""
    workdir = tmp_path_factory.mktemp("published")
    env = invoke_environ()
    env.update({"LONGCERT_CACHE_DIR": str(shared_cache),
                "LONGCERT_BUILDS_DIR": str(workdir / "builds")})
    out = workdir / "builds" / build_id(standin.DEMO_TAG, 7, 10, platforms=MULTI_PLATFORMS)
    build = RealBuild(out, workdir / "share", workdir, "", env)
    result = build.invoke("build", "--version", standin.DEMO_TAG, "--years", "7",
                          "--repo", str(standin_repo), "--platforms", ",".join(MULTI_PLATFORMS),
                          "--publish", f"dir:{build.share}")
    assert result.returncode == 0, result.stderr
    return RealBuild(build.path, build.share, workdir, result.stdout, env)
