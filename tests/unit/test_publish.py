"""Publish targets without a network: target strings, build checks, the directory target,
release notes, the GitHub plan, and the OCI image layout."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from longcert import publish, settings
from longcert.errors import ConfigError, PublishError
from longcert.progress import Reporter
from longcert.publish import directory
from tests.standin_build import executable_header, make_build


def conf(**flags: object) -> settings.Settings:
    return settings.load(flags, environ={})


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    return make_build(tmp_path / "builds")


@pytest.fixture
def build(build_dir: Path) -> publish.Build:
    return publish.load_build(build_dir)


# ------------------------------------------------------------------ target strings


def test_plain_path_and_dir_prefix_are_directories(tmp_path: Path) -> None:
    plain = publish.parse_target(str(tmp_path / "out"), conf(), environ={})
    prefixed = publish.parse_target(f"dir:{tmp_path}/out", conf(), environ={})
    relative = publish.parse_target("share/kubeadm", conf(), environ={})
    assert plain == prefixed == publish.DirectoryTarget(tmp_path / "out")
    assert isinstance(relative, publish.DirectoryTarget) and relative.root.is_absolute()
    assert plain.name == f"dir:{tmp_path}/out"


def test_github_target_uses_the_api_url_setting_and_token_from_environment() -> None:
    target = publish.parse_target(
        "github:example/kubeadm-builds",
        conf(github_api_url="https://ghe.example.com/api/v3/"),
        environ={"GITHUB_TOKEN": "secret-token"},
    )
    assert isinstance(target, publish.GitHubTarget)
    assert (target.owner, target.repo) == ("example", "kubeadm-builds")
    assert target.api_url == "https://ghe.example.com/api/v3"
    assert target.name == "github:example/kubeadm-builds"
    assert "secret-token" not in repr(vars(target).get("name", "")) + target.name


@pytest.mark.parametrize(
    ("text", "base"),
    [
        ("oci://127.0.0.1:5000/kubeadm", "http://127.0.0.1:5000/v2/kubeadm"),
        ("oci://localhost:5000/tools/kubeadm", "http://localhost:5000/v2/tools/kubeadm"),
        ("oci://[::1]:5000/kubeadm", "http://[::1]:5000/v2/kubeadm"),
        ("oci://registry.example.com/tools/kubeadm", "https://registry.example.com/v2/tools/kubeadm"),
        ("oci://mirror.local:5000/k8s/kubeadm/", "https://mirror.local:5000/v2/k8s/kubeadm"),
        ("oci://127.registry.example.com/kubeadm", "https://127.registry.example.com/v2/kubeadm"),
        ("oci://127.0.0.2:5000/kubeadm", "http://127.0.0.2:5000/v2/kubeadm"),
    ],
)
def test_oci_scheme_plain_http_only_for_localhost(text: str, base: str) -> None:
    target = publish.parse_target(text, conf(), environ={})
    assert isinstance(target, publish.OciTarget)
    assert target.base == base


def test_oci_insecure_setting_gives_plain_http() -> None:
    target = publish.parse_target("oci://mirror.local:5000/kubeadm", conf(oci_insecure="true"),
                                  environ={})
    assert isinstance(target, publish.OciTarget)
    assert target.base.startswith("http://mirror.local:5000/")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no publish target given"),
        ("dir:", "names no directory"),
        ("github:example", "is not github:OWNER/REPO"),
        ("github:ex ample/repo", "is not github:OWNER/REPO"),
        ("oci://registry.example.com", "is not oci://HOST[:PORT]/REPOSITORY"),
        ("oci://registry.example.com/Tools/KubeADM", "is not oci://HOST[:PORT]/REPOSITORY"),
        ("s3://bucket/kubeadm", "unknown publish target kind 's3'"),
        ("ghcr:example/kubeadm", "unknown publish target kind 'ghcr'"),
    ],
)
def test_bad_target_strings(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        publish.parse_target(text, conf(), environ={})


def test_github_without_token_refused_before_anything_unless_dry_run() -> None:
    with pytest.raises(ConfigError, match="needs a token in the GITHUB_TOKEN"):
        publish.open_target("github:example/builds", conf(), dry_run=False, environ={})
    target = publish.open_target("github:example/builds", conf(), dry_run=True, environ={})
    assert isinstance(target, publish.GitHubTarget)


def test_registry_credentials_from_environment_or_docker_config(tmp_path: Path) -> None:
    env = {"OCI_USERNAME": "robot", "OCI_PASSWORD": "pw"}
    assert publish.registry_credentials("r.example", env) == ("robot", "pw")
    (tmp_path / "config.json").write_text(json.dumps(
        {"auths": {"r.example:5000": {"auth": base64.b64encode(b"alice:s3cret").decode()}}}))
    docker_env = {"DOCKER_CONFIG": str(tmp_path)}
    assert publish.registry_credentials("r.example:5000", docker_env) == ("alice", "s3cret")
    assert publish.registry_credentials("other.example", docker_env) is None


def test_parse_challenge() -> None:
    scheme, params = publish.parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:kubeadm:pull"'
    )
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "registry.example",
                      "scope": "repository:kubeadm:pull"}
    assert publish.parse_challenge('Basic realm="Registry"') == ("basic", {"realm": "Registry"})


@pytest.mark.parametrize(
    ("host", "local"),
    [("localhost", True), ("localhost:5000", True), ("127.0.0.1:5000", True),
     ("127.1.2.3", True), ("[::1]:5000", True), ("registry.local:5000", False),
     ("10.0.0.5:5000", False), ("localhost.example.com", False),
     # loopback by address, never by how a name starts: names are not resolved
     ("127.registry.example.com", False), ("127.0.0.1.nip.io:5000", False),
     ("127.0.0.1@registry.example.com", False), ("user:pw@127.0.0.1:5000", True),
     ("::1", True), ("[::ffff:127.0.0.1]:5000", True), ("[::ffff:10.0.0.1]", False),
     ("LOCALHOST:5000", True), ("0.0.0.0:5000", False), ("[::]:5000", False), ("127.1", False),
     ("", False), ("[::1", False)],
)
def test_is_local_host(host: str, local: bool) -> None:
    assert publish.is_local_host(host) is local


# ------------------------------------------------------------------ the build


def test_load_build_reads_files_in_publish_order(build: publish.Build) -> None:
    assert build.build_id == "kubeadm-v1.33.7-leaf10y-ca10y-linux-amd64.linux-arm64"
    assert (build.tag, build.leaf_years, build.ca_years) == ("v1.33.7", 10, 10)
    assert build.image_tag == "v1.33.7-leaf10y-ca10y-linux-amd64.linux-arm64"
    assert [f.name for f in build.files] == [
        "kubeadm-linux-amd64", "kubeadm-linux-arm64", "kubeadm-linux-amd64.spdx.json",
        "kubeadm-linux-arm64.spdx.json", "provenance.json", "SHA256SUMS", "patch.diff",
        "manifest.json"]
    assert [f.platform for f in build.binaries] == ["linux/amd64", "linux/arm64"]


def test_unverified_build_is_refused(tmp_path: Path) -> None:
    out = make_build(tmp_path / "builds", passed=False)
    with pytest.raises(PublishError, match="verification did not pass; only a verified build"):
        publish.load_build(out)


def test_verify_json_must_agree(build_dir: Path) -> None:
    (build_dir / "verify.json").write_text('{"passed": false, "platforms": []}\n')
    with pytest.raises(PublishError, match="verification did not pass"):
        publish.load_build(build_dir)


def test_binary_changed_after_verification_is_refused(build_dir: Path) -> None:
    with open(build_dir / "kubeadm-linux-arm64", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(PublishError, match="kubeadm-linux-arm64 changed after verification"):
        publish.load_build(build_dir)


def test_not_a_build_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"is not a build directory .no build in {tmp_path}"):
        publish.load_build(tmp_path / "absent")
    made = make_build(tmp_path / "builds")
    with pytest.raises(ConfigError, match=f"builds in {tmp_path / 'builds'}: {made.name}"):
        publish.load_build(tmp_path / "builds" / "kubeadm-v1.33.8-leaf10y-ca10y")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"has no manifest\.json"):
        publish.load_build(tmp_path / "empty")


# ------------------------------------------------------------------ manifests publish cannot trust


def edit_manifest(build_dir: Path, change: Callable[[dict[str, Any]], object]) -> None:
    path = build_dir / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def set_at(keys: str, value: object) -> Callable[[dict[str, Any]], None]:
    """manifest[k1][k2]... = value (an int key indexes a list)."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = (int(k) if k.isdigit() else k for k in keys.split("."))
        node: Any = data
        for key in parents:
            node = node[key]
        node[last] = value

    return change


def refused(build_dir: Path, *words: str) -> str:
    """load_build gives one line naming the build directory and ``words``."""
    with pytest.raises(PublishError) as caught:
        publish.load_build(build_dir)
    text = str(caught.value)
    assert "\n" not in text and str(build_dir) in text, text
    for word in words:
        assert word in text, text
    return text


def test_artifact_file_outside_the_build_is_refused(build_dir: Path, tmp_path: Path) -> None:
    payload = build_dir.parent / "payload"  # beside the build: "../payload" from inside it
    payload.write_bytes((build_dir / "kubeadm-linux-arm64").read_bytes())
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    edit_manifest(build_dir, set_at("artifacts.1.file", "../payload"))
    sums = (build_dir / "SHA256SUMS").read_text().replace(" kubeadm-linux-arm64", " ../payload")
    (build_dir / "SHA256SUMS").write_text(sums)
    assert f"{digest}  ../payload" in sums
    refused(build_dir, "artifacts[1].file", '"../payload"', "not kubeadm-linux-arm64")
    # Before the check, a directory target wrote it to share/payload, beside the build's folder.
    with pytest.raises(PublishError):
        publish.DirectoryTarget(tmp_path / "share").push(publish.load_build(build_dir))
    assert not (tmp_path / "share").exists()


@pytest.mark.parametrize(
    "name",
    ["kubeadm-linux-arm64.exe", "/etc/passwd", "kubeadm-linux-amd64", "sub/kubeadm-linux-arm64",
     "kubeadm-windows-arm64.exe"],
)
def test_artifact_file_must_be_the_builds_name_for_its_platform(build_dir: Path,
                                                                 name: str) -> None:
    edit_manifest(build_dir, set_at("artifacts.1.file", name))
    refused(build_dir, "manifest.json artifacts[1].file", "not kubeadm-linux-arm64")


@pytest.mark.parametrize(
    "tag",
    ["v1.33.7/../../../other/manifests/latest#", "v1.33.7 ", " v1.33.7", "1.33.7", "v1.33.7-x",
     "v1.33.7\n", "v01.33.7"],
)
def test_tag_must_be_a_release_tag(build_dir: Path, tag: str) -> None:
    edit_manifest(build_dir, set_at("kubernetes.tag", tag))
    refused(build_dir, "manifest.json kubernetes.tag")


def test_build_id_must_match_the_manifest(build_dir: Path, tmp_path: Path) -> None:
    edit_manifest(build_dir, set_at("validity.leaf_years", 5))
    edit_manifest(build_dir, set_at("validity.leaf_hours", 5 * 8760))
    refused(build_dir, "is not the build id kubeadm-v1.33.7-leaf5y-ca10y")
    renamed = make_build(tmp_path / "other").rename(tmp_path / "other" / "kubeadm-latest")
    refused(renamed, "is not the build id kubeadm-v1.33.7-leaf10y-ca10y")


@pytest.mark.parametrize(
    ("platform", "other"),
    [("linux/arm64", "linux/amd64"), ("linux/arm64", "windows/arm64"),
     ("linux/arm64", "darwin/arm64"), ("linux/arm64", "linux/s390x")],
)
def test_binary_must_be_an_executable_for_its_platform(
    build_dir: Path, platform: str, other: str
) -> None:
    # The arm64 slot holds another platform's binary, with every sum made to agree.
    data = executable_header(other) + b"\0" * 5000
    replace_binary(build_dir, 1, data)
    refused(build_dir, "kubeadm-linux-arm64 is not a linux/arm64 executable")


def test_binary_that_is_no_executable_is_refused(build_dir: Path) -> None:
    replace_binary(build_dir, 0, b"#!/bin/sh\necho pwned\n")
    refused(build_dir, "kubeadm-linux-amd64 is not a linux/amd64 executable",
            "not an ELF, PE or Mach-O executable")


def replace_binary(build_dir: Path, index: int, data: bytes) -> None:
    manifest = json.loads((build_dir / "manifest.json").read_text())
    item = manifest["artifacts"][index]
    old = item["sha256"]
    (build_dir / item["file"]).write_bytes(data)
    item.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    (build_dir / "manifest.json").write_text(json.dumps(manifest))
    sums = build_dir / "SHA256SUMS"
    sums.write_text(sums.read_text().replace(old, item["sha256"]))


def test_every_platform_checks_out(tmp_path: Path) -> None:
    platforms = tuple(sorted(settings.KNOWN_PLATFORMS))
    build = publish.load_build(make_build(tmp_path / "builds", platforms=platforms))
    assert [b.platform for b in build.binaries] == list(platforms)


def test_verification_must_be_of_this_build_and_every_platform(build_dir: Path) -> None:
    report = json.loads((build_dir / "verify.json").read_text())
    report["platforms"][1]["leaf_years"] = 1  # a report of another build
    (build_dir / "verify.json").write_text(json.dumps(report))
    refused(build_dir, "verify.json report for linux/arm64", "leaf_years")
    del report["platforms"][1]
    (build_dir / "verify.json").write_text(json.dumps(report))
    refused(build_dir, "linux/arm64 was not verified", "verify.json has 0 report(s)")


def test_manifest_platform_status_must_say_verified(build_dir: Path) -> None:
    edit_manifest(build_dir, set_at("verification.platforms.linux/arm64.status", "failed"))
    refused(build_dir, "linux/arm64 was not verified (manifest.json says failed")


def test_patch_diff_must_be_the_one_the_manifest_names(build_dir: Path) -> None:
    with open(build_dir / "patch.diff", "a") as handle:
        handle.write("+\tmore\n")
    refused(build_dir, "patch.diff changed after the build")


def test_published_files_are_not_links_out_of_the_build(build_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.diff"  # same bytes, so only the link gives it away
    secret.write_bytes((build_dir / "patch.diff").read_bytes())
    (build_dir / "patch.diff").unlink()
    (build_dir / "patch.diff").symlink_to(secret)
    refused(build_dir, "patch.diff is a symbolic link")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (set_at("artifacts", "kubeadm"), "artifacts"),
        (set_at("artifacts", []), "artifacts"),
        (set_at("artifacts.0", 7), "artifacts[0].platform"),
        (set_at("artifacts.0.platform", "linux"), "artifacts[0].platform"),
        (set_at("artifacts.0.platform", ["linux/amd64"]), "artifacts[0].platform"),
        (set_at("artifacts.1.platform", "linux/amd64"), "artifacts[1].platform"),
        (set_at("artifacts.0.sha256", None), "artifacts[0].sha256"),
        (set_at("artifacts.0.size", "300000"), "artifacts[0].size"),
        (set_at("artifacts.0.size", 1), "size of kubeadm-linux-amd64"),
        (lambda d: d["artifacts"][0].pop("file"), "artifacts[0].file"),
        (set_at("kubernetes", "v1.33.7"), "kubernetes"),
        (set_at("kubernetes.tag", 1.337), "kubernetes.tag"),
        (set_at("kubernetes.commit", "HEAD; rm -rf /"), "kubernetes.commit"),
        (set_at("validity.leaf_years", "10"), "validity.leaf_years"),
        (set_at("validity.leaf_years", True), "validity.leaf_years"),
        (set_at("validity.leaf_years", 10.0), "validity.leaf_years"),
        (set_at("validity.ca_years", 10**400), "validity.ca_years"),
        (set_at("validity.leaf_hours", 1), "validity.leaf_hours"),
        (set_at("go", "1.24"), "go"),
        (set_at("go.source", "x | y"), "go.source"),
        (set_at("tool", None), "tool"),
        (set_at("tool.version", "1\n2"), "tool.version"),
        (set_at("patch.set", {}), "patch.set"),
        (set_at("created", "yesterday"), "created"),
        (set_at("verification", True), "verification"),
        (set_at("verification.platforms", []), "verification.platforms"),
        (set_at("verification.platforms.linux/amd64", "verified"),
         "verification.platforms.linux/amd64.status"),
        (set_at("verification.platforms.linux/amd64.certificates_checked", "22"),
         "verification.platforms.linux/amd64.certificates_checked"),
        (lambda d: d["verification"]["platforms"].update({"../../x": {}}),
         "verification.platforms"),
    ],
)
def test_every_field_publish_uses_is_checked(
    build_dir: Path, change: Callable[[dict[str, Any]], object], field: str
) -> None:
    edit_manifest(build_dir, change)
    refused(build_dir, f"manifest.json {field} ")


@pytest.mark.parametrize("content", ["[]", "null", '"manifest"', "[" * 100_000, "NaN"],
                         ids=["list", "null", "string", "deep", "nan"])
def test_manifest_that_is_no_object(build_dir: Path, content: str) -> None:
    (build_dir / "manifest.json").write_text(content)
    refused(build_dir, "manifest")


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00garbage", b"nonsense\n", b"%s  kubeadm-linux-amd64\n%s  kubeadm-linux-amd64\n"],
)
def test_sha256sums_that_sha256sum_did_not_write(build_dir: Path, content: bytes) -> None:
    digest = hashlib.sha256((build_dir / "kubeadm-linux-amd64").read_bytes()).hexdigest()
    (build_dir / "SHA256SUMS").write_bytes(content.replace(b"%s", digest.encode()))
    refused(build_dir, "SHA256SUMS")


def test_verify_json_that_is_no_report(build_dir: Path) -> None:
    for content in ("[]", '{"passed": true}', '{"passed": true, "platforms": {}}'):
        (build_dir / "verify.json").write_text(content)
        with pytest.raises(PublishError, match=r"verify\.json|verification did not pass"):
            publish.load_build(build_dir)


# ------------------------------------------------------------------ directory target


def _snapshot(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(path)): (p.stat().st_mtime_ns, p.stat().st_ino)
            for p in sorted(path.rglob("*"))}


def test_directory_publish_then_rerun_is_a_no_op(build: publish.Build, tmp_path: Path) -> None:
    target = publish.DirectoryTarget(tmp_path / "share")
    assert not target.has(build)
    result = target.push(build)
    dest = tmp_path / "share" / build.build_id
    assert result.location == str(dest) and result.changed == len(build.files)
    for item in build.files:
        assert (dest / item.name).read_bytes() == item.path.read_bytes()
    assert (dest / "kubeadm-linux-amd64").stat().st_mode & 0o777 == 0o755
    assert (dest / "SHA256SUMS").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in (tmp_path / "share").iterdir()) == [build.build_id]
    assert target.has(build)

    before = _snapshot(tmp_path / "share")
    again = target.push(build)
    assert again.changed == 0 and {a.verb for a in again.actions} == {"skip"}
    assert _snapshot(tmp_path / "share") == before


def test_directory_dry_run_writes_nothing(build: publish.Build, tmp_path: Path) -> None:
    target = publish.DirectoryTarget(tmp_path / "share")
    result = target.push(build, dry_run=True)
    assert result.dry_run and result.changed == len(build.files)
    assert result.actions[0].describe(True).startswith("would copy kubeadm-linux-amd64")
    assert not (tmp_path / "share").exists()


def test_directory_refuses_a_different_file_of_the_same_name(
    build: publish.Build, tmp_path: Path
) -> None:
    dest = tmp_path / "share" / build.build_id
    dest.mkdir(parents=True)
    (dest / "kubeadm-linux-arm64").write_bytes(b"another build's binary")
    target = publish.DirectoryTarget(tmp_path / "share")
    with pytest.raises(PublishError, match="kubeadm-linux-arm64 already exists and differs"):
        target.push(build)
    assert sorted(p.name for p in dest.iterdir()) == ["kubeadm-linux-arm64"]
    assert (dest / "kubeadm-linux-arm64").read_bytes() == b"another build's binary"


def test_directory_completes_a_partial_copy(build: publish.Build, tmp_path: Path) -> None:
    dest = tmp_path / "share" / build.build_id
    dest.mkdir(parents=True)
    (dest / "kubeadm-linux-amd64").write_bytes(build.files[0].path.read_bytes())
    result = publish.DirectoryTarget(tmp_path / "share").push(build)
    assert [a.verb for a in result.actions] == ["skip"] + ["copy"] * 7
    assert sorted(p.name for p in dest.iterdir()) == sorted(f.name for f in build.files)


def test_directory_failure_half_way_leaves_nothing(
    build: publish.Build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = directory._copy_checked
    calls = []

    def failing(item: publish.BuildFile, dest: Path) -> None:
        calls.append(item.name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(item, dest)

    monkeypatch.setattr(directory, "_copy_checked", failing)
    target = publish.DirectoryTarget(tmp_path / "share")
    with pytest.raises(PublishError, match=r"cannot write .*No space left on device"):
        target.push(build)
    assert list((tmp_path / "share").iterdir()) == []  # no half-written build, no staging dir
    assert not target.has(build)


def test_directory_on_a_missing_mount_is_refused(build: publish.Build, tmp_path: Path) -> None:
    target = publish.DirectoryTarget(tmp_path / "not-mounted" / "kubeadm")
    with pytest.raises(PublishError, match=r"does not exist .*mount the share"):
        target.push(build)
    assert not (tmp_path / "not-mounted").exists()


def test_push_reports_each_action(build: publish.Build, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    target = publish.DirectoryTarget(tmp_path / "share")
    publish.push(build, target, Reporter())
    publish.push(build, target, Reporter())
    out = capsys.readouterr().out
    assert "copy kubeadm-linux-amd64" in out
    assert f"nothing to publish: {target.name} already has {build.build_id}" in out


# ------------------------------------------------------------------ notes and images


def test_release_notes_from_the_manifest(build: publish.Build) -> None:
    notes = publish.release_notes(build)
    assert "kubeadm **v1.33.7**" in notes
    assert "| leaf certificates | 10 years (87600h) |" in notes
    assert "| CAs | 10 years (87600h) |" in notes
    assert "| Go | 1.24.11 (from .go-version) |" in notes
    assert "| patch set | e4-validity-period" in notes
    assert "| verification | passed: linux/amd64 verified (22 certificates)" in notes
    for item in build.files[:-1]:
        assert f"| `{item.name}` | {item.platform or '-'} |" in notes
        assert f"`{item.sha256}`" in notes
    assert "`manifest.json`" not in notes
    assert publish.release_title(build) == "kubeadm v1.33.7: leaf certificates 10y, CAs 10y"


def test_oci_images_are_reproducible_and_complete(tmp_path: Path) -> None:
    out = make_build(tmp_path / "builds", platforms=("linux/amd64", "linux/arm", "windows/amd64"))
    build = publish.load_build(out)
    first, second = publish.oci_images(build), publish.oci_images(build)
    assert first == second  # same bytes, same digests: a re-run pushes nothing new
    index = json.loads(first.index.data)
    assert index["mediaType"] == publish.OCI_INDEX
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm", "os": "linux", "variant": "v7"},
        {"architecture": "amd64", "os": "windows"},
    ] + [{"architecture": "unknown", "os": "unknown"}] * 3
    assert [m["digest"] for m in index["manifests"]] == [
        i.manifest.digest for i in (*first.images, *first.attestations)]
    # each image's attestation (provenance, SBOM) is referenced from the index, as buildx does
    for image, entry in zip(first.images, index["manifests"][3:], strict=True):
        assert entry["annotations"] == {"vnd.docker.reference.digest": image.manifest.digest,
                                        "vnd.docker.reference.type": "attestation-manifest"}
    windows_attestation = first.attestations[2]
    layers = json.loads(windows_attestation.manifest.data)["layers"]
    assert [layer["annotations"]["in-toto.io/predicate-type"] for layer in layers] == [
        "https://slsa.dev/provenance/v1", "https://spdx.dev/Document"]
    assert windows_attestation.layers[0].data == (out / "provenance.json").read_bytes()
    sbom = json.loads(windows_attestation.layers[1].data)
    assert sbom["subject"][0]["name"] == "kubeadm-windows-amd64.exe"
    assert sbom["predicate"] == json.loads(
        (out / "kubeadm-windows-amd64.exe.spdx.json").read_text())
    by_platform = {i.platform: i for i in first.images}
    windows = by_platform["windows/amd64"]
    assert windows.binary == "/kubeadm.exe"
    manifest = json.loads(windows.manifest.data)
    assert manifest["config"]["digest"] == windows.config.digest
    assert manifest["layers"] == [windows.layer.descriptor(
        annotations={"org.opencontainers.image.title": "kubeadm.exe"})]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(windows.layer.data))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["kubeadm.exe", "longcert/manifest.json", "longcert/patch.diff"]
        assert members["kubeadm.exe"].mode == 0o755 and members["kubeadm.exe"].mtime == 0
        data = tar.extractfile(members["kubeadm.exe"])
        assert data is not None
        assert data.read() == (out / "kubeadm-windows-amd64.exe").read_bytes()
    config = json.loads(windows.config.data)
    assert config["os"] == "windows" and config["rootfs"]["type"] == "layers"
    assert config["config"]["Labels"]["io.longcert.leaf-years"] == "10"


def test_action_descriptions() -> None:
    upload = publish.Action("upload", "kubeadm-linux-amd64", "github:o/r", 3 * 2**20)
    assert upload.describe() == "upload kubeadm-linux-amd64 (3.0 MiB) -> github:o/r"
    assert upload.describe(dry_run=True).startswith("would upload")
    skip = publish.Action("skip", "SHA256SUMS", "dir:/x", 10, "already there, same sha256")
    assert skip.describe(dry_run=True) == "skip SHA256SUMS: already there, same sha256"


def test_github_plan_creates_a_draft_and_publishes_it_last(
    build: publish.Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan alone, with the asset listing stubbed: a new release is a draft published after
    its last asset; a draft left behind is finished; a published release only gets checked."""
    target = publish.GitHubTarget("o", "r", "https://api.github.com", "token")
    uploaded = {
        f.name: {"id": n, "name": f.name, "state": "uploaded", "size": f.size,
                 "digest": f"sha256:{f.sha256}"}
        for n, f in enumerate(build.files)
    }
    monkeypatch.setattr(target, "_assets", lambda release: uploaded if release["id"] else {})
    name = build.build_id

    new = target._plan(build, None)
    assert [(a.verb, a.name) for a in (new[0], new[-1])] == [
        ("create", f"draft release {name}"), ("publish", f"release {name}")]
    assert [a.name for a in new[1:-1]] == [f.name for f in build.files]

    empty_draft = target._plan(build, {"id": 0, "draft": True})
    assert [a.verb for a in empty_draft] == ["upload"] * len(build.files) + ["finish"]
    full_draft = target._plan(build, {"id": 1, "draft": True})
    assert [a.verb for a in full_draft] == ["skip"] * len(build.files) + ["finish"]
    assert full_draft[-1].describe(dry_run=True) == (
        f"would finish draft release {name} -> github:o/r "
        "(an earlier publish stopped before publishing it)")

    published = target._plan(build, {"id": 1, "draft": False})
    assert {a.verb for a in published} == {"skip"}


def test_new_settings_defaults_and_validation() -> None:
    defaults = conf()
    assert defaults.publish == ""
    assert defaults.github_api_url == "https://api.github.com"
    assert defaults.oci_insecure is False
    from_env = settings.load({}, environ={"LONGCERT_PUBLISH": "github:o/r"})
    assert from_env.publish == "github:o/r"
    assert from_env.sources["publish"] == "env LONGCERT_PUBLISH"
    with pytest.raises(ConfigError, match="must be an http"):
        conf(github_api_url="api.github.com")


@pytest.mark.parametrize("text", ["docker.io/me/kubeadm", "registry:5000/tools/kubeadm",
                                  "localhost/kubeadm", "ghcr.io/me/kubeadm"])
def test_a_registry_given_without_oci_is_not_taken_for_a_directory(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from longcert.publish.targets import DirectoryTarget, parse_target

    monkeypatch.chdir(tmp_path)
    conf = settings.load({}, environ={})
    with pytest.raises(ConfigError) as err:
        parse_target(text, conf)
    assert f"looks like a registry repository, not a directory (for a registry give oci://{text}" \
        in str(err.value)
    assert isinstance(parse_target(f"dir:{text}", conf), DirectoryTarget)
    (tmp_path / text.split("/")[0]).mkdir()  # a directory of that name here: it is one
    assert isinstance(parse_target(text, conf), DirectoryTarget)


# --- what reuse of an identical build re-checks (issue 22) --------------------------------

REUSE_INPUTS = {"remote": "file:///standin/kubernetes", "tag": "v1.33.7"}


def _reusable(tmp_path: Path) -> Path:
    return make_build(tmp_path / "builds", inputs=dict(REUSE_INPUTS))


def _reuse(out: Path) -> object:
    return publish.existing_build(out.parent, out.name, dict(REUSE_INPUTS))


def test_an_intact_build_is_reused(tmp_path: Path) -> None:
    out = _reusable(tmp_path)
    assert _reuse(out) is not None


@pytest.mark.parametrize(("change", "said"), [
    (lambda out: (out / "kubeadm-linux-amd64").chmod(0o777), "is writable by anyone (mode 0777)"),
    (lambda out: (out / "kubeadm-linux-amd64").chmod(0o644), "is no longer executable"),
    (lambda out: (out / "build.log").write_text("edited\n"), "build.log changed after the build"),
    (lambda out: (out / "verify.json").write_text(
        (out / "verify.json").read_text().replace('"checks": []', '"checks": [1]')),
     "verify.json changed after the build"),
    (lambda out: (out / "patch.diff").write_text("+ nothing\n"), "patch.diff changed after"),
    (lambda out: (out / "extra").mkdir(), "extra is not a regular file"),
])
def test_reuse_refuses_a_build_changed_after_it_was_written(
    tmp_path: Path, change: Callable[[Path], object], said: str
) -> None:
    out = _reusable(tmp_path)
    change(out)
    with pytest.raises(PublishError, match=re.escape(said)):
        _reuse(out)


def test_a_build_without_recorded_evidence_is_not_reused(tmp_path: Path) -> None:
    out = _reusable(tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["evidence"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    resum(out)
    with pytest.raises(PublishError, match="records no sha256 of its evidence"):
        _reuse(out)


def resum(out: Path) -> None:
    """SHA256SUMS written again, as for a build whose manifest.json was written that way."""
    from longcert import package

    (out / "SHA256SUMS").write_text(package.sums_text(out, package.published_names(out)))


# ------------------------------------------------------------------ the kit in the provenance


class Stopped(BaseException):
    """A stop (kill) between two of record_kit's writes."""


def _kit(text: str) -> bytes:
    from longcert import kit

    return kit.kit_archive([kit.KitFile("README.md", text)])


def _real_build(builds_dir: Path) -> Path:
    """make_build's build with provenance.json laid out as package.write writes it (two-space
    indent; the stand-in writes it on one line), as manifest.json and SHA256SUMS then record."""
    from longcert import package

    out = make_build(builds_dir)
    text = package.json_text(json.loads((out / "provenance.json").read_text()))
    (out / "provenance.json").write_text(text)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["attestations"]["provenance"]["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (out / "manifest.json").write_text(package.json_text(manifest))
    (out / "SHA256SUMS").write_text(package.sums_text(out, package.published_names(out)))
    publish.load_build(out)
    return out


def _kit_subjects(out: Path) -> list[tuple[str, str]]:
    statement = json.loads((out / "provenance.json").read_text())
    return [(s["name"], s["digest"]["sha256"]) for s in statement["subject"]
            if s["name"] == "kit.tar.gz"]


@pytest.mark.parametrize("earlier_kit", [False, True])
@pytest.mark.parametrize("stop_before", [0, 1, 2, 3])
def test_recording_the_kit_stopped_between_any_two_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_before: int, earlier_kit: bool
) -> None:
    """record_kit writes provenance.json, then manifest.json, then SHA256SUMS, each renamed
    into place; stopped before any of them (0: the new kit.tar.gz is in place, nothing
    recorded), publish refuses in one line saying to run `longcert kit` again, and that
    `longcert kit` loads the build (kit_rewrite) and records the kit everywhere."""
    from longcert import package, runs

    out = _real_build(tmp_path / "builds")
    if earlier_kit:
        (out / "kit.tar.gz").write_bytes(_kit("earlier"))
        package.record_kit(out)
        publish.load_build(out)
    (out / "kit.tar.gz").write_bytes(_kit("new"))
    kit_sha256 = hashlib.sha256((out / "kit.tar.gz").read_bytes()).hexdigest()
    written: list[str] = []
    real_write = runs.write_atomic

    def write_until_stopped(path: Path, text: str) -> None:
        if len(written) == stop_before:
            raise Stopped
        written.append(path.name)
        real_write(path, text)

    monkeypatch.setattr(runs, "write_atomic", write_until_stopped)
    if stop_before < 3:
        with pytest.raises(Stopped):
            package.record_kit(out)
        with pytest.raises(PublishError) as refused:
            publish.load_build(out)
        assert "run `longcert kit` again" in refused.value.line
        assert "\n" not in refused.value.line
        build = publish.load_build(out, kit_rewrite=True)  # what `longcert kit` loads
        assert "kit.tar.gz" not in [f.name for f in build.files]
        written.clear()
        stop_before = 3  # `longcert kit` again, to the end
    package.record_kit(out, {f.name: f.sha256 for f in publish.load_build(
        out, kit_rewrite=True).files})
    assert written[:3] == ["provenance.json", "manifest.json", "SHA256SUMS"]
    build = publish.load_build(out)
    assert _kit_subjects(out) == [("kit.tar.gz", kit_sha256)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kit"]["sha256"] == kit_sha256
    assert manifest["attestations"]["provenance"]["sha256"] == hashlib.sha256(
        (out / "provenance.json").read_bytes()).hexdigest()
    assert {f.name for f in build.files} >= {"kit.tar.gz", "provenance.json"}


def test_provenance_must_name_the_recorded_kit(tmp_path: Path) -> None:
    """A kit recorded in manifest.json and SHA256SUMS but not as provenance.json's subject (as an
    older longcert recorded it), or named there with another sha256, is refused."""
    from longcert import package

    out = make_build(tmp_path / "builds")
    (out / "kit.tar.gz").write_bytes(_kit("kit"))
    package.record_kit(out)
    statement = json.loads((out / "provenance.json").read_text())
    for sha256 in (None, "0" * 64):
        text = package.kit_provenance(statement, sha256)
        (out / "provenance.json").write_text(text)
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["attestations"]["provenance"]["sha256"] = hashlib.sha256(
            text.encode()).hexdigest()
        (out / "manifest.json").write_text(package.json_text(manifest))
        (out / "SHA256SUMS").write_text(package.sums_text(out, package.published_names(out)))
        with pytest.raises(PublishError, match=r"does not name the kit\.tar\.gz manifest\.json"):
            publish.load_build(out)
        publish.load_build(out, kit_rewrite=True)  # and `longcert kit` puts it right


def test_a_hand_edited_manifest_is_not_taken_for_a_stopped_kit(tmp_path: Path) -> None:
    from longcert import package

    out = make_build(tmp_path / "builds")
    (out / "kit.tar.gz").write_bytes(_kit("kit"))
    package.record_kit(out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["created"] = "2030-01-01T00:00:00Z"
    (out / "manifest.json").write_text(package.json_text(manifest))
    for kit_rewrite in (False, True):
        with pytest.raises(PublishError, match=r"manifest\.json changed after the build"):
            publish.load_build(out, kit_rewrite=kit_rewrite)


# ------------------------------------------------------------------ running the binaries


def test_run_check_without_an_engine_says_how_to_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from longcert import container
    from longcert.errors import EngineError
    from longcert.publish import runcheck

    def no_engine() -> None:
        raise EngineError("no Docker engine answers at unix:///nowhere", "start dockerd")

    monkeypatch.setattr(container, "connect", no_engine)
    build = publish.load_build(make_build(tmp_path / "builds"))
    lines: list[str] = []
    with pytest.raises(EngineError) as caught:
        runcheck.check_binaries_run(build, image=None, cache_dir=tmp_path / "cache",
                                    progress=lines.append)
    assert "before uploading, and no Docker engine answers" in caught.value.line
    assert "--no-run-check" in caught.value.line


def test_run_check_remembers_a_passed_binary_by_sha256(tmp_path: Path) -> None:
    """A binary that ran and reported the tag before (same sha256) is not run again; a
    windows binary is never run (its header was checked). No engine is reached here."""
    from longcert.publish import runcheck

    build = publish.load_build(make_build(tmp_path / "builds",
                                          platforms=("linux/amd64", "windows/amd64")))
    cache = tmp_path / "cache"
    (linux,) = [b for b in build.binaries if b.platform == "linux/amd64"]
    runcheck._remember(cache, linux, build.tag)
    lines: list[str] = []
    runcheck.check_binaries_run(build, image=None, cache_dir=cache, progress=lines.append)
    assert any("when it ran before" in line for line in lines)
    assert any("windows/amd64 binary does not run here" in line for line in lines)
    # remembered as reporting another tag, it is not taken as passed
    assert not runcheck._passed_before(cache, linux, "v1.33.6")


@pytest.mark.parametrize(
    ("code", "output", "said"),
    [
        (0, "v1.33.7\n", ("v1.33.7", "")),
        (0, "W0101 warning\nv1.33.7\n", ("", "printed 2 lines, not one tag")),
        (2, "exec format error\n", ("", "failed (exit 2): exec format error")),
        (2, "fatal error: bad\ngoroutine 1\n", ("", "crashed in the Go runtime: fatal error: bad")),
    ],
)
def test_run_check_outcome(code: int, output: str, said: tuple[str, str]) -> None:
    from longcert.publish import runcheck

    assert runcheck._outcome(code, output) == said
