"""Publish one real, verified stand-in build (built once for the session) to every target, fetch
it back and compare sha256; re-running publishes nothing new."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest

from tests.fake_github import FakeGitHub
from tests.fixtures import standin
from tests.integration.conftest import MULTI_PLATFORMS as PLATFORMS
from tests.integration.conftest import EraBuilds, RealBuild
from tests.local_registry import LocalRegistry
from tests.standin_build import executable_header

pytestmark = pytest.mark.docker

TAG = standin.DEMO_TAG


def snapshot(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(path)): (p.stat().st_mtime_ns, p.stat().st_ino)
            for p in sorted(path.rglob("*"))}


def test_build_publish_to_a_directory(real_build: RealBuild, standin_repo: Path) -> None:
    published = real_build.share / real_build.path.name
    assert f"published to {published}" in real_build.build_stdout
    assert "==> publish to dir:" in real_build.build_stdout
    names = sorted(p.name for p in published.iterdir())
    binaries = ["kubeadm-linux-amd64", "kubeadm-linux-arm64", "kubeadm-windows-amd64.exe"]
    assert names == sorted(["SHA256SUMS", *binaries, *(f"{b}.spdx.json" for b in binaries),
                            "manifest.json", "patch.diff", "provenance.json", "report.html",
                            "REPORT.md"])
    for name in names:  # fetched back: byte for byte the build's files
        assert (published / name).read_bytes() == (real_build.path / name).read_bytes()
    subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=published, check=True)

    before = snapshot(real_build.share)
    again = real_build.invoke("publish", "--build", str(real_build.path),
                              "--publish", f"dir:{real_build.share}")
    assert again.returncode == 0, again.stderr
    assert "nothing to publish" in again.stdout
    assert snapshot(real_build.share) == before
    # before anything leaves the machine, each Linux binary ran (or ran before: same sha256)
    for name in ("kubeadm-linux-amd64", "kubeadm-linux-arm64"):
        assert (f"{name} runs and reports {TAG}" in again.stdout
                or f"{name} reported {TAG} when it ran before" in again.stdout), name
    assert "kubeadm-windows-amd64.exe: a windows/amd64 binary does not run here" in again.stdout

    # the same build asked again with another target: answered from the existing build, whose
    # binaries are run (or known to have run) before they leave, as `publish` does
    other = real_build.workdir / "share-again"
    rebuilt = real_build.invoke("build", "--version", TAG, "--years", "7",
                                "--repo", str(standin_repo), "--platforms", ",".join(PLATFORMS),
                                "--publish", f"dir:{other}")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "is this build already" in rebuilt.stdout + rebuilt.stderr
    assert f"{TAG} when it ran before" in rebuilt.stdout
    assert (other / real_build.path.name / "kubeadm-linux-amd64").is_file()


def test_the_build_carries_its_provenance_and_sboms(real_build: RealBuild) -> None:
    manifest = json.loads((real_build.path / "manifest.json").read_bytes())
    sums = real_build.sums()
    statement = json.loads((real_build.path / "provenance.json").read_bytes())
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert {(s["name"], s["digest"]["sha256"]) for s in statement["subject"]} == set(sums.items())
    definition = statement["predicate"]["buildDefinition"]
    deps = {d["name"]: d for d in definition["resolvedDependencies"]}
    assert deps["kubernetes source"]["digest"] == {"gitCommit": manifest["kubernetes"]["commit"]}
    assert deps["patch.diff"]["digest"] == {"sha256": manifest["patch"]["diff_sha256"]}
    assert deps["builder image"]["annotations"]["image_id"] == manifest["image"]["id"]
    assert definition["internalParameters"]["make"]["argv"][:3] == ["make", "all",
                                                                    "WHAT=cmd/kubeadm"]
    assert definition["externalParameters"] == manifest["inputs"]
    byproduct = statement["predicate"]["runDetails"]["byproducts"][0]
    assert byproduct["digest"]["sha256"] == hashlib.sha256(
        (real_build.path / "verify.json").read_bytes()).hexdigest()
    assert byproduct["annotations"]["passed"] is True
    for entry in manifest["attestations"]["sbom"]:
        doc = json.loads((real_build.path / entry["file"]).read_bytes())
        packages = {p["name"]: p for p in doc["packages"]}
        binary = entry["file"].removesuffix(".spdx.json")
        assert packages[binary]["checksums"][0]["checksumValue"] == sums[binary]
        # what the binary records, read by the Go that built it
        assert packages["stdlib"]["versionInfo"] == "go" + manifest["go"]["version"]
        assert "go version -m" in doc["creationInfo"]["comment"]


def test_registry_then_docker_pull_like_any_image(real_build: RealBuild, registry: LocalRegistry,
                                                  engine: docker.DockerClient) -> None:
    target = f"oci://{registry.host}/longcert/kubeadm"
    tag = real_build.path.name.removeprefix("kubeadm-")  # platforms are part of it
    result = real_build.invoke("publish", "--build", str(real_build.path), "--publish", target)
    assert result.returncode == 0, result.stderr
    assert f"published {real_build.path.name} to {registry.host}/longcert/kubeadm:{tag}" \
        in result.stdout

    sums = real_build.sums()
    images = registry.fetch_image_files("longcert/kubeadm", tag)
    assert sorted(images) == sorted(PLATFORMS)
    attestations = registry.fetch_attestations("longcert/kubeadm", tag)
    assert sorted(attestations) == sorted(PLATFORMS)
    provenance = json.loads((real_build.path / "provenance.json").read_bytes())
    for platform, (slsa, spdx) in attestations.items():
        assert slsa == provenance
        name = f"kubeadm-{platform.replace('/', '-')}" + (
            ".exe" if platform.startswith("windows/") else "")
        assert spdx["predicateType"] == "https://spdx.dev/Document"
        assert spdx["subject"] == [{"name": name, "digest": {"sha256": sums[name]}}]
        assert spdx["predicate"] == json.loads(
            (real_build.path / f"{name}.spdx.json").read_bytes())
    for platform, image in images.items():
        exe = ".exe" if platform.startswith("windows/") else ""
        assert image["files"][f"kubeadm{exe}"] == sums[
            f"kubeadm-{platform.replace('/', '-')}{exe}"]

    writes = registry.writes()
    again = real_build.invoke("publish", "--build", str(real_build.path), "--publish", target)
    assert again.returncode == 0 and "nothing to publish" in again.stdout
    assert registry.writes() == writes

    # An air-gapped site mirrors it like any image: the engine pulls it (linux/amd64 from the
    # index), and the binary inside is the verified one.
    reference = f"{registry.host}/longcert/kubeadm:{tag}"
    engine.images.pull(f"{registry.host}/longcert/kubeadm", tag=tag)
    try:
        container = engine.containers.create(reference)
        try:
            stream, _ = container.get_archive("/kubeadm")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                handle = tar.extractfile("kubeadm")
                assert handle is not None
                assert hashlib.sha256(handle.read()).hexdigest() == sums["kubeadm-linux-amd64"]
        finally:
            container.remove()
    finally:
        engine.images.remove(reference, force=True)


def test_github_release_of_the_real_build(real_build: RealBuild) -> None:
    fake = FakeGitHub(token="ghs_integration_token")
    env = {"GITHUB_TOKEN": "ghs_integration_token", "LONGCERT_GITHUB_API_URL": fake.api_url}
    try:
        args = ("publish", "--build", str(real_build.path), "--publish",
                "github:example/kubeadm-builds")
        result = real_build.invoke(*args, env=env)
        assert result.returncode == 0, result.stderr
        release = fake.release(real_build.path.name)
        assert release is not None
        got = {a.name: hashlib.sha256(a.data).hexdigest() for a in release.assets}
        want = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in real_build.path.iterdir()
                if p.name not in ("verify.json", "build.log")}
        assert got == want
        assert f"kubeadm **{TAG}**" in release.body
        assert "| leaf certificates | 7 years" in release.body
        uploads = len(fake.uploads())
        again = real_build.invoke(*args, env=env)
        assert again.returncode == 0 and "nothing to publish" in again.stdout
        assert len(fake.uploads()) == uploads
        assert "ghs_integration_token" not in again.stdout + result.stdout + again.stderr
    finally:
        fake.stop()


def _readme_download_check() -> list[str]:
    """The commands of README.md's "Using a published build", one per logical line."""
    from tests.cli import ROOT

    text = (ROOT / "README.md").read_text()
    section = text.split("## Using a published build", 1)[1]
    block = section.split("```", 2)[1]
    joined = block.replace("\\\n", " ")
    return [" ".join(line.split("#", 1)[0].split()) for line in joined.splitlines()
            if line.strip()]


def test_the_readme_download_check_runs_against_a_published_build(
    real_build: RealBuild, tmp_path: Path
) -> None:
    """Each command of README.md's download check (issue 20): the gh lines have the shape that
    pins the repository, the release workflow and the branch; the others run, as written, in
    a directory holding what `gh release download` fetches, taken from a published build."""
    import sys

    from tests.cli import invoke_environ

    published = real_build.share / real_build.path.name
    fetched = tmp_path / "download"
    fetched.mkdir()
    commands = _readme_download_check()
    download = next(c for c in commands if c.startswith("gh release download"))
    patterns = download.split("--pattern ")[1:]
    assert [p.strip() for p in patterns] == ["kubeadm-linux-amd64", "SHA256SUMS", "manifest.json"]
    for name in patterns:
        (fetched / name.strip()).write_bytes((published / name.strip()).read_bytes())
    (fetched / "kubeadm-linux-amd64").chmod(0o755)
    attestations = [c for c in commands if c.startswith("gh attestation verify")]
    assert len(attestations) == 2
    for line in attestations:
        assert "--repo OWNER/REPO" in line
        assert "--signer-workflow OWNER/REPO/.github/workflows/release.yml" in line
        assert "--source-ref refs/heads/" in line
    ran = 0
    for line in commands:
        if line.startswith("gh "):
            continue
        argv = line.split()
        if argv[0] == "longcert":
            argv = [sys.executable, "-m", "longcert", *argv[1:]]
        result = subprocess.run(argv, cwd=fetched, capture_output=True, text=True, check=False,
                                timeout=600, env=invoke_environ(real_build.env))
        assert result.returncode == 0, (line, result.stdout[-2000:], result.stderr[-2000:])
        ran += 1
    assert ran == 2  # sha256sum -c and longcert verify
    # and the check refuses what it should: a changed binary fails sha256sum -c
    (fetched / "kubeadm-linux-amd64").write_bytes(b"\x7fELF changed")
    changed = subprocess.run(["sha256sum", "-c", "SHA256SUMS", "--ignore-missing"],
                             cwd=fetched, capture_output=True, text=True, check=False)
    assert changed.returncode != 0 and "kubeadm-linux-amd64: FAILED" in changed.stdout


def _with_binary(real_build: RealBuild, where: Path, data: bytes) -> Path:
    """A copy of the build whose kubeadm-linux-amd64 is ``data``, and whose manifest.json,
    provenance.json and SHA256SUMS were written again to match it: every sha256 and header
    check passes, so only running it can tell."""
    from longcert import package

    out = where / "builds" / real_build.path.name
    shutil.copytree(real_build.path, out)
    name = "kubeadm-linux-amd64"
    (out / name).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    statement = json.loads((out / "provenance.json").read_text())
    for subject in statement["subject"]:
        if subject["name"] == name:
            subject["digest"]["sha256"] = digest
    text = package.json_text(statement)
    (out / "provenance.json").write_text(text)
    manifest = json.loads((out / "manifest.json").read_text())
    for artifact in manifest["artifacts"]:
        if artifact["file"] == name:
            artifact.update(sha256=digest, size=len(data))
    manifest["attestations"]["provenance"]["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (out / "manifest.json").write_text(package.json_text(manifest))
    (out / "SHA256SUMS").write_text(package.sums_text(out, package.published_names(out)))
    return out


def test_a_real_kubeadm_of_another_tag_is_not_published(
    real_build: RealBuild, era_build: EraBuilds, tmp_path: Path
) -> None:
    """The build's binary swapped for a real kubeadm of another tag (the session's newest-era
    build, shared with the kit and pipeline tests), the sums rewritten to match: refused."""
    other = era_build(standin.NEWEST_TAG, 15, 20) / "kubeadm-linux-amd64"
    out = _with_binary(real_build, tmp_path, other.read_bytes())
    share = tmp_path / "share"
    result = real_build.invoke("publish", "--build", str(out), "--publish", f"dir:{share}")
    assert result.returncode == 9, result.stderr
    assert (f"kubeadm-linux-amd64 is not kubeadm {TAG}: `kubeadm-linux-amd64 version -o short` "
            f"printed '{standin.NEWEST_TAG}'") in result.stderr
    assert not share.exists()


def test_a_binary_that_does_not_run_is_not_published(real_build: RealBuild,
                                                     tmp_path: Path) -> None:
    """A linux/amd64 ELF header with nothing runnable behind it: refused with how it failed."""
    header = executable_header("linux/amd64")
    out = _with_binary(real_build, tmp_path, header + bytes(300_000 - len(header)))
    share = tmp_path / "share"
    result = real_build.invoke("publish", "--build", str(out), "--publish", f"dir:{share}")
    assert result.returncode == 9, result.stderr
    assert f"kubeadm-linux-amd64 is not kubeadm {TAG}: `kubeadm-linux-amd64 version" \
        in result.stderr
    assert "failed (exit" in result.stderr or "crashed" in result.stderr
    assert len([ln for ln in result.stderr.splitlines() if ln.strip()]) == 1
    assert not share.exists()
