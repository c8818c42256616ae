"""Publishing with --sign-key (issue 20, point 2) against a real registry (Debian's
docker-registry on 127.0.0.1) and a directory; everything is read back and checked with
tests/signature_check.py (openssl, securesystemslib, the distribution API), not longcert's code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from longcert import publish, settings
from longcert.progress import Reporter
from longcert.publish import ocisign
from longcert.publish.signing import signer_of
from tests.local_registry import LocalRegistry
from tests.signature_check import (
    cosign_attestations,
    cosign_signed,
    openssl_verifies,
    referrers,
)
from tests.standin_build import make_build

ROOT = Path(__file__).resolve().parents[2]
SLSA = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document"


def key_pair(tmp_path: Path, name: str = "longcert") -> tuple[Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / f"{name}.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path, signer_of(key).public_pem()


def target(text: str, key: Path | None) -> publish.Target:
    conf = settings.load({"sign_key": str(key)} if key else {}, environ={})
    return publish.open_target(text, conf, dry_run=False,
                               environ={"DOCKER_CONFIG": "/nonexistent"})


def test_signed_oci_publish_verifies_independently_and_reruns_push_nothing(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    build = publish.load_build(make_build(tmp_path / "builds", tag="v1.31.14"))
    key, public = key_pair(tmp_path)
    oci = target(f"oci://{registry.host}/signed/kubeadm", key)
    assert isinstance(oci, publish.OciTarget)
    result = publish.push(build, oci, Reporter(quiet=True))
    tag = result.location.rpartition(":")[2]
    repository = "signed/kubeadm"
    index_raw = registry.get(f"{repository}/manifests/{tag}",
                             "application/vnd.oci.image.index.v1+json")
    index_digest = "sha256:" + hashlib.sha256(index_raw).hexdigest()
    images = {f"{e['platform']['os']}/{e['platform']['architecture']}": e["digest"]
              for e in json.loads(index_raw)["manifests"] if not e.get("annotations")}
    assert sorted(images) == ["linux/amd64", "linux/arm64"]
    provenance = json.loads((build.path / "provenance.json").read_text())

    # cosign verify --key: the index and every platform image carry a signature by this key
    for digest in (index_digest, *images.values()):
        assert cosign_signed(registry, repository, digest, public)
    _, other_public = key_pair(tmp_path, "other")
    assert not cosign_signed(registry, repository, index_digest, other_public)

    # cosign verify-attestation --key: provenance on the index and on each image, whose
    # subject is the image (not the binary); each image's SBOM is the build's for that binary
    on_index = cosign_attestations(registry, repository, index_digest, public)
    assert set(on_index) == {SLSA}
    assert on_index[SLSA]["predicate"] == provenance["predicate"]
    for platform, digest in images.items():
        found = cosign_attestations(registry, repository, digest, public)
        assert set(found) == {SLSA, SPDX}
        binary = next(b for b in build.binaries if b.platform == platform)
        sbom = json.loads((build.path / f"{binary.name}.spdx.json").read_text())
        assert found[SPDX]["predicate"] == sbom
        assert found[SPDX]["subject"] == [{"name": f"{registry.host}/{repository}",
                                          "digest": {"sha256": digest.split(":")[1]}}]
        # ...and the same envelopes as OCI 1.1 referrers of the image (the fallback tag, as
        # this registry has no referrers API)
        listed = referrers(registry, repository, digest)
        assert sorted(m["annotations"]["in-toto.io/predicate-type"] for m in listed) == [
            SLSA, SPDX]

    # what `invoke oci-refs` prints for the workflow's cosign steps: the same digests
    refs = publish.oci_references(build.path, f"oci://{registry.host}/{repository}",
                                  settings.load({}, environ={}))
    name = f"{registry.host}/{repository}"
    assert refs[0] == ("index", f"{name}@{index_digest}", "-")
    assert {what: ref for what, ref, _ in refs[1:]} == {
        platform: f"{name}@{digest}" for platform, digest in images.items()}
    assert all(Path(sbom).is_file() for _, _, sbom in refs[1:])

    writes = registry.writes()
    again = publish.push(build, target(f"oci://{registry.host}/signed/kubeadm", key),
                         Reporter(quiet=True))
    assert again.changed == 0 and registry.writes() == writes


def test_an_unsigned_publish_gets_signed_later_and_other_signatures_are_kept(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    build = publish.load_build(make_build(tmp_path / "builds", tag="v1.30.14"))
    repository = "later/kubeadm"
    first = publish.push(build, target(f"oci://{registry.host}/{repository}", None),
                         Reporter(quiet=True))
    tag = first.location.rpartition(":")[2]
    index_digest = "sha256:" + hashlib.sha256(
        registry.get(f"{repository}/manifests/{tag}",
                     "application/vnd.oci.image.index.v1+json")).hexdigest()
    with pytest.raises(Exception, match="404"):  # unsigned: no .sig tag
        registry.get(f"{repository}/manifests/{ocisign.cosign_tag(index_digest, 'sig')}")

    key_a, public_a = key_pair(tmp_path, "a")
    key_b, public_b = key_pair(tmp_path, "b")
    signed_a = publish.push(build, target(f"oci://{registry.host}/{repository}", key_a),
                            Reporter(quiet=True))
    assert signed_a.changed > 0
    # the release tag was not moved
    assert any(a.verb == "skip" and a.name.endswith(tag) for a in signed_a.actions)
    publish.push(build, target(f"oci://{registry.host}/{repository}", key_b), Reporter(quiet=True))
    # a second key adds its signature beside the first (as cosign does), it does not replace it
    assert cosign_signed(registry, repository, index_digest, public_a)
    assert cosign_signed(registry, repository, index_digest, public_b)


def test_a_signed_directory_carries_sha256sums_sig_openssl_verifies(tmp_path: Path) -> None:
    build = publish.load_build(make_build(tmp_path / "builds", tag="v1.29.15"))
    key, public = key_pair(tmp_path)
    published = tmp_path / "published"
    result = publish.push(build, target(f"dir:{published}", key), Reporter(quiet=True))
    out = Path(result.location)
    signature = base64.b64decode((out / "SHA256SUMS.sig").read_bytes())
    assert openssl_verifies(public, (out / "SHA256SUMS").read_bytes(), signature)
    # the check docs/publishing.md gives, run as written (paths aside)
    docs = (ROOT / "docs" / "publishing.md").read_text()
    block = docs.split("Checking, on the site", 1)[1].split("```\n", 2)[1]
    pub = tmp_path / "longcert.pub"
    pub.write_bytes(public)
    script = block.replace("/srv/share/kubeadm/kubeadm-v1.33.7-leaf10y-ca10y", str(out)) \
        .replace("longcert.pub", str(pub))
    assert "openssl dgst" in script and "sha256sum -c SHA256SUMS" in script
    checked = subprocess.run(["bash", "-euo", "pipefail", "-c", script],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert "Verified OK" in checked.stdout
    # the build directory itself is unchanged, and a re-run finds the same signature there
    assert not (build.path / "SHA256SUMS.sig").exists()
    again = publish.push(build, target(f"dir:{published}", key), Reporter(quiet=True))
    assert again.changed == 0
    # a SHA256SUMS changed afterwards (a binary swapped with its line) fails the check
    sums = out / "SHA256SUMS"
    sums.write_text(sums.read_text().replace("kubeadm-linux-arm64", "kubeadm-linux-arm64 "))
    tampered = subprocess.run(["bash", "-euo", "pipefail", "-c", script],
                              capture_output=True, text=True, check=False)
    assert tampered.returncode != 0 and "Verification failure" in tampered.stdout


def test_an_encrypted_key_without_its_passphrase_is_one_line_and_nothing_is_published(
    tmp_path: Path,
) -> None:
    build_dir = make_build(tmp_path / "builds", tag="v1.28.15")
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "enc.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"pass-word")))
    published = tmp_path / "published"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LONGCERT_") and k != "COSIGN_PASSWORD"}
    result = subprocess.run(
        [sys.executable, "-m", "longcert", "publish", "--build", str(build_dir),
         "--publish", f"dir:{published}", "--sign-key", str(path)],
        cwd=ROOT, capture_output=True, text=True, env=env, check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"--sign-key {path} is encrypted" in result.stderr
    assert not published.exists()


def test_a_signed_github_release_carries_sha256sums_sig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fake_github import FakeGitHub

    token = "ghs_fake_token_0123456789"
    fake = FakeGitHub(token=token)
    monkeypatch.setenv("GITHUB_TOKEN", token)
    try:
        build = publish.load_build(make_build(tmp_path / "builds", tag="v1.27.16"))
        key, public = key_pair(tmp_path)
        conf = settings.load({"github_api_url": fake.api_url, "sign_key": str(key)}, environ={})
        gh = publish.open_target(f"github:{fake.owner}/{fake.repo}", conf, dry_run=False)
        publish.push(build, gh, Reporter(quiet=True))
        release = fake.release(build.build_id)
        assert release is not None
        assets = {a.name: a for a in release.assets}
        assert "SHA256SUMS.sig" in assets and "SHA256SUMS" in assets
        downloaded = {}
        for name in ("SHA256SUMS", "SHA256SUMS.sig"):
            url = f"{fake.origin}/download/{assets[name].id}"
            with urllib.request.urlopen(url, timeout=10) as reply:
                downloaded[name] = reply.read()
        assert openssl_verifies(public, downloaded["SHA256SUMS"],
                                base64.b64decode(downloaded["SHA256SUMS.sig"]))
    finally:
        fake.stop()
