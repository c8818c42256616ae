"""Publish to an OCI registry: ``oci://HOST[:PORT]/REPOSITORY``, through the distribution API.

Each binary becomes a one-layer image (the binary, manifest.json and patch.diff) with an
attestation manifest beside it (the build's SLSA provenance and the binary's SPDX SBOM, as
in-toto statements, laid out as ``docker buildx`` does), and an image index over them is tagged
``<tag>-leafNy-caNy``; the images are byte-for-byte reproducible, so a
re-run uploads only what the registry lacks and the tag, written last, is never moved. Login is
Basic or a bearer token from the registry's token service, with credentials from OCI_USERNAME /
OCI_PASSWORD or the Docker config (``docker login``: its ``auths`` entries and credential
helpers), looked up only when the registry asks for them.

Every request is tried again as the target's :class:`~longcert.publish.http.RetryPolicy` says;
a blob upload that breaks off starts again with a new upload session, once the registry has
been asked whether the broken one did arrive after all.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import tarfile
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longcert import __version__
from longcert.errors import NoAnswerError, PublishError
from longcert.publish.build import Build, BuildRef
from longcert.publish.credentials import OCI_PASSWORD_ENV as OCI_PASSWORD_ENV
from longcert.publish.credentials import OCI_USER_ENV as OCI_USER_ENV
from longcert.publish.credentials import registry_credentials as registry_credentials
from longcert.publish.github import release_title
from longcert.publish.http import (
    RETRY_STATUSES,
    Http,
    Response,
    RetryPolicy,
    credentials_allowed,
    origin,
    strip_query,
)
from longcert.publish.plan import Action, ProgressFn, PublishResult, quiet
from longcert.settings import is_local_host

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
IN_TOTO = "application/vnd.in-toto+json"
SPDX_PREDICATE = "https://spdx.dev/Document"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
MANIFEST_ACCEPT = ", ".join(
    (
        OCI_INDEX,
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
GOARM_VARIANT = {"arm": "v7"}  # Kubernetes builds linux/arm with GOARM=7
# (user, password), a function that looks them up when the registry first asks, or None.
Credentials = tuple[str, str] | Callable[[], tuple[str, str] | None] | None


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.data),
            **extra,
        }


@dataclass(frozen=True)
class PlatformImage:
    platform: str
    binary: str  # path inside the image, e.g. /kubeadm
    layer: Blob
    config: Blob
    manifest: Blob


@dataclass(frozen=True)
class Attestation:
    """The attestation manifest of one platform's image, as ``docker buildx`` lays it out: its
    layers are in-toto statements (the build's SLSA provenance, the binary's SPDX SBOM), and
    the index lists it with platform unknown/unknown and a reference to the image's digest."""

    platform: str
    layers: tuple[Blob, ...]
    config: Blob
    manifest: Blob
    subject: str  # digest of the platform image it attests


@dataclass(frozen=True)
class ImageSet:
    """One image per platform, their attestations and the index over them; byte-for-byte
    reproducible."""

    images: tuple[PlatformImage, ...]
    index: Blob
    attestations: tuple[Attestation, ...] = ()


def _canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _image_manifest(
    config: Blob, layers: list[dict[str, Any]], annotations: Mapping[str, str] | None = None
) -> Blob:
    """An OCI image manifest of ``config`` and the ``layers`` descriptors (a platform image's,
    with its labels as annotations, or an attestation's, without)."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers,
    }
    if annotations is not None:
        document["annotations"] = annotations
    return Blob(OCI_MANIFEST, _canonical(document))


def _layer(files: list[tuple[str, Path, int]]) -> tuple[bytes, str]:
    """A gzipped tar of ``files`` (name, source, mode), with fixed owners and times."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, source, mode in files:
            info = tarfile.TarInfo(name)
            info.size = source.stat().st_size
            info.mode = mode
            info.mtime = 0
            info.uname = info.gname = ""
            with open(source, "rb") as handle:
                tar.addfile(info, handle)
    tar_bytes = raw.getvalue()
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(tar_bytes)
    return packed.getvalue(), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def oci_images(build: Build) -> ImageSet:
    """For each binary: a one-layer image holding it (and the manifest and diff) plus an index."""
    common = {
        "org.opencontainers.image.title": "kubeadm",
        "org.opencontainers.image.version": build.tag,
        "org.opencontainers.image.description": release_title(build),
        "org.opencontainers.image.created": str(build.manifest.get("created", "")),
        "io.longcert.build-id": build.build_id,
        "io.longcert.leaf-years": str(build.leaf_years),
        "io.longcert.ca-years": str(build.ca_years),
    }
    metadata = {f.name: f for f in build.files if not f.platform}
    images = []
    for binary in build.binaries:
        goos, goarch = binary.platform.split("/")
        in_image = "kubeadm.exe" if goos == "windows" else "kubeadm"
        layer_bytes, diff_id = _layer(
            [
                (in_image, binary.path, 0o755),
                ("longcert/manifest.json", metadata["manifest.json"].path, 0o644),
                ("longcert/patch.diff", metadata["patch.diff"].path, 0o644),
            ]
        )
        layer = Blob(OCI_LAYER, layer_bytes)
        platform: dict[str, str] = {"architecture": goarch, "os": goos}
        if goarch in GOARM_VARIANT:
            platform["variant"] = GOARM_VARIANT[goarch]
        labels = {**common, "io.longcert.kubeadm.sha256": binary.sha256}
        config = Blob(
            OCI_CONFIG,
            _canonical(
                {
                    **platform,
                    "created": common["org.opencontainers.image.created"] or "1970-01-01T00:00:00Z",
                    "config": {"Entrypoint": [f"/{in_image}"], "Labels": labels},
                    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                    "history": [
                        {
                            "created_by": f"longcert {__version__} publish",
                            "comment": f"{binary.name} sha256 {binary.sha256}",
                        }
                    ],
                }
            ),
        )
        manifest = _image_manifest(
            config,
            [layer.descriptor(annotations={"org.opencontainers.image.title": in_image})],
            annotations=labels,
        )
        images.append(PlatformImage(binary.platform, f"/{in_image}", layer, config, manifest))
    attestations = tuple(_attestation(build, image, metadata) for image in images)
    index = Blob(
        OCI_INDEX,
        _canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    image.manifest.descriptor(platform=_platform_of(image.platform))
                    for image in images
                ]
                + [
                    item.manifest.descriptor(
                        platform={"architecture": "unknown", "os": "unknown"},
                        annotations={
                            "vnd.docker.reference.digest": item.subject,
                            "vnd.docker.reference.type": "attestation-manifest",
                        },
                    )
                    for item in attestations
                ],
                "annotations": common,
            }
        ),
    )
    return ImageSet(tuple(images), index, attestations)


def _attestation(build: Build, image: PlatformImage, metadata: Mapping[str, Any]) -> Attestation:
    """The provenance statement as it is, and the binary's SPDX document wrapped in an in-toto
    statement whose subject is that binary."""
    binary = next(b for b in build.binaries if b.platform == image.platform)
    provenance = metadata["provenance.json"].path.read_bytes()
    sbom_file = metadata[binary.name + ".spdx.json"].path
    try:
        sbom, statement = json.loads(sbom_file.read_bytes()), json.loads(provenance)
    except ValueError as exc:
        raise PublishError(f"{build.path}: an SBOM or provenance.json is not JSON: {exc}") from exc
    predicate = statement.get("predicateType") if isinstance(statement, dict) else None
    statements = (
        (provenance, str(predicate or "")),
        (
            _canonical(
                {
                    "_type": STATEMENT_TYPE,
                    "subject": [{"name": binary.name, "digest": {"sha256": binary.sha256}}],
                    "predicateType": SPDX_PREDICATE,
                    "predicate": sbom,
                }
            ),
            SPDX_PREDICATE,
        ),
    )
    layers = tuple(Blob(IN_TOTO, data) for data, _ in statements)
    config = Blob(
        OCI_CONFIG,
        _canonical(
            {
                "architecture": "unknown",
                "os": "unknown",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
            }
        ),
    )
    manifest = _image_manifest(
        config,
        [
            layer.descriptor(annotations={"in-toto.io/predicate-type": predicate})
            for layer, (_, predicate) in zip(layers, statements, strict=True)
        ],
    )
    return Attestation(image.platform, layers, config, manifest, image.manifest.digest)


def _platform_of(platform: str) -> dict[str, str]:
    goos, goarch = platform.split("/")
    out = {"architecture": goarch, "os": goos}
    if goarch in GOARM_VARIANT:
        out["variant"] = GOARM_VARIANT[goarch]
    return out


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` -> ("bearer", {realm: ..., service: ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


class OciTarget:
    """``oci://HOST[:PORT]/REPOSITORY``: an image per platform and an index, tagged
    ``<tag>-leafNy-caNy``, through the OCI distribution API."""

    def __init__(
        self,
        host: str,
        repository: str,
        *,
        insecure: bool = False,
        credentials: Credentials = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """``credentials``: (user, password), or a function that looks them up (called once,
        only when the registry asks for credentials), or None for none."""
        self.host = host
        self.repository = repository
        scheme = "http" if insecure or is_local_host(host) else "https"
        self.base = f"{scheme}://{host}/v2/{repository}"
        self._lookup = credentials if callable(credentials) else None
        self._credentials = None if callable(credentials) else credentials
        self._auth_header = ""
        self.http = Http(self.name, secrets=tuple(self._credentials or ()), retry=retry)
        self._images: dict[Path, ImageSet] = {}

    def _creds(self) -> tuple[str, str] | None:
        """The credentials, looked up the first time they are needed; their parts are
        redacted from every message from then on."""
        if self._lookup is not None:
            lookup, self._lookup = self._lookup, None
            self._credentials = lookup()
            self.http.secrets = (*self.http.secrets, *(s for s in self._credentials or () if s))
        return self._credentials

    @property
    def name(self) -> str:
        return f"oci://{self.host}/{self.repository}"

    def reference(self, build: BuildRef) -> str:
        return f"{self.host}/{self.repository}:{build.image_tag}"

    def images(self, build: Build) -> ImageSet:
        if build.path not in self._images:
            self._images[build.path] = oci_images(build)
        return self._images[build.path]

    def _call(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        ok: tuple[int, ...] = (200,),
        allow: tuple[int, ...] = (),
        idempotent: bool | None = None,
    ) -> Response:
        hint = (
            "is the registry running? Without TLS on a host other than localhost set "
            "oci_insecure (LONGCERT_OCI_INSECURE=true)"
            if url.startswith("https")
            else "is the registry running and listening there?"
        )
        all_headers = {"User-Agent": f"longcert/{__version__}", **(headers or {})}
        reply = self._send(method, url, all_headers, body, hint, idempotent)
        # Only the registry itself may ask for credentials: a challenge from an upload location
        # or redirect on another server is not answered.
        own = self._own(reply.url or url)
        if reply.status == 401 and "www-authenticate" in reply.headers and own:
            self._authenticate(reply.headers["www-authenticate"], hint)
            reply = self._send(method, url, all_headers, body, hint, idempotent)
        if reply.status in ok or reply.status in allow:
            return reply
        advice = (
            f"set {OCI_USER_ENV} and {OCI_PASSWORD_ENV} (or docker login {self.host}) with "
            f"push rights on {self.repository}"
            if reply.status in (401, 403)
            else "run the same command again; what the registry already has is skipped"
        )
        raise PublishError(
            self.http.redact(
                f"{self.name}: {method} {strip_query(url)} answered "
                f"{reply.status} {reply.message()}{reply.after()}"
            ),
            advice,
        )

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        hint: str,
        idempotent: bool | None = None,
    ) -> Response:
        # The registry's credentials go to the registry's own address (scheme, host and port)
        # and nowhere else: an upload location on another server gets no Authorization header.
        own = self._own(url) and credentials_allowed(url)
        secret = {"Authorization": self._auth_header} if self._auth_header and own else {}
        return self.http.request(
            method,
            url,
            headers=headers,
            secret_headers=secret,
            body=body,
            hint=hint,
            idempotent=idempotent,
        )

    def _own(self, url: str) -> bool:
        """Whether ``url`` is on the registry's own address (scheme, host and port)."""
        return origin(url) == origin(self.base)

    def _authenticate(self, challenge: str, hint: str) -> None:
        """Answer the registry's challenge: Basic to the registry itself, or a token from the
        token service it names, which gets the credentials only over HTTPS unless it is the
        registry's own loopback address."""
        if not credentials_allowed(self.base):
            raise PublishError(
                f"{self.name} asks for credentials, and longcert sends none over plain HTTP to "
                "a registry off this machine",
                "serve the registry over HTTPS; oci_insecure is for registries without login",
            )
        scheme, params = parse_challenge(challenge)
        basic = ""
        credentials = self._creds()
        if credentials:
            user, password = credentials
            basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if scheme == "basic":
            if not basic:
                raise PublishError(
                    f"{self.name} wants a user name and password",
                    f"set {OCI_USER_ENV} and {OCI_PASSWORD_ENV}, or docker login {self.host}",
                )
            self._auth_header = basic
            return
        if scheme != "bearer" or "realm" not in params:
            raise PublishError(f"{self.name}: unsupported authentication {scheme!r}")
        realm = params["realm"]
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PublishError(
                f"{self.name}: the registry names a token service {realm!r} that is not an "
                "http(s) URL"
            )
        if basic and parts.scheme != "https" and not self._own(realm):
            raise PublishError(
                f"{self.name}: will not send credentials to the token service "
                f"{strip_query(realm)}: plain HTTP to another server than the registry",
                "a token service on another host or port gets credentials only over HTTPS",
            )
        query = {"scope": f"repository:{self.repository}:pull,push"}
        if "service" in params:
            query["service"] = params["service"]
        url = f"{realm}{'&' if parts.query else '?'}{urllib.parse.urlencode(query)}"
        reply = self.http.request(
            "GET", url, secret_headers={"Authorization": basic} if basic else None, hint=hint
        )
        data = reply.json()
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if reply.status != 200 or not token:
            raise PublishError(
                f"{self.name}: the token service {strip_query(url)} answered {reply.status}",
                f"set {OCI_USER_ENV} and {OCI_PASSWORD_ENV} (or docker login {self.host})",
            )
        self.http.secrets = (*self.http.secrets, str(token))
        self._auth_header = f"Bearer {token}"

    def _existing(self, reference: str) -> Response | None:
        reply = self._call(
            "GET",
            f"{self.base}/manifests/{reference}",
            headers={"Accept": MANIFEST_ACCEPT},
            allow=(404,),
        )
        return reply if reply.status == 200 else None

    def _has_blob(self, digest: str) -> bool:
        return self._call("HEAD", f"{self.base}/blobs/{digest}", allow=(404,)).status == 200

    def _has_manifest(self, digest: str) -> bool:
        reply = self._call(
            "HEAD",
            f"{self.base}/manifests/{digest}",
            headers={"Accept": MANIFEST_ACCEPT},
            allow=(404,),
        )
        return reply.status == 200

    def has(self, build: BuildRef) -> bool:
        return self._existing(build.image_tag) is not None

    def plan(self, build: Build) -> list[Action]:
        images = self.images(build)
        ref = self.reference(build)
        existing = self._existing(build.image_tag)
        if existing is not None:
            digest = "sha256:" + hashlib.sha256(existing.body).hexdigest()
            if digest != images.index.digest:
                raise PublishError(
                    f"{ref} already exists with different content ({digest[:19]}, this build "
                    f"{images.index.digest[:19]})",
                    "a published tag is never moved: delete it in the registry, or publish to "
                    "another repository",
                )
            return [Action("skip", ref, self.name, reason="already there, same digest")]
        actions = []
        for image in images.images:
            for blob, what in ((image.layer, "layer"), (image.config, "config")):
                actions.append(self._blob_action(f"{image.platform} {what}", blob))
            actions.append(self._manifest_action(f"{image.platform} image", image.manifest))
        for item in images.attestations:
            for blob in (*item.layers, item.config):
                actions.append(self._blob_action(f"{item.platform} attestation blob", blob))
            actions.append(self._manifest_action(f"{item.platform} attestation", item.manifest))
        actions.append(Action("upload", f"index {ref}", self.name, len(images.index.data)))
        return actions

    def _blob_action(self, what: str, blob: Blob) -> Action:
        label = f"{what} {blob.digest[:19]}"
        if self._has_blob(blob.digest):
            return Action("skip", label, self.name, reason="blob already there")
        return Action("upload", label, self.name, len(blob.data))

    def _manifest_action(self, what: str, manifest: Blob) -> Action:
        label = f"{what} {manifest.digest[:19]}"
        if self._has_manifest(manifest.digest):
            return Action("skip", label, self.name, reason="already there")
        return Action("upload", label, self.name, len(manifest.data))

    def push(
        self, build: Build, dry_run: bool = False, progress: ProgressFn | None = None
    ) -> PublishResult:
        say = progress or quiet
        self.http.notify = say  # a retry says so
        actions = self.plan(build)
        ref = self.reference(build)
        if dry_run or all(a.verb == "skip" for a in actions):
            for action in actions:
                say(action.describe(dry_run))
            return PublishResult.of(self.name, ref, actions, dry_run)
        images = self.images(build)
        steps: list[tuple[Blob, str]] = []
        for image in images.images:
            steps += [(image.layer, "blob"), (image.config, "blob"), (image.manifest, "manifest")]
        for item in images.attestations:
            steps += [(blob, "blob") for blob in (*item.layers, item.config)]
            steps.append((item.manifest, "manifest"))
        steps.append((images.index, "tag"))
        for action, (blob, kind) in zip(actions, steps, strict=True):
            say(action.describe())
            if action.verb == "skip":
                continue
            if kind == "blob":
                self._put_blob(blob)
            else:
                reference = build.image_tag if kind == "tag" else blob.digest
                self._call(
                    "PUT",
                    f"{self.base}/manifests/{reference}",
                    body=blob.data,
                    headers={"Content-Type": blob.media_type},
                    ok=(201, 200),
                )
        return PublishResult.of(self.name, ref, actions, dry_run)

    def _put_blob(self, blob: Blob) -> None:
        """Upload ``blob`` (a monolithic upload: a session, then one PUT of the whole blob).
        An upload that breaks off, or that the registry answers with an error that may pass,
        starts again with a new session, unless the registry has the blob by then."""
        tries = self.http.retries()
        what = f"upload of blob {blob.digest[:19]}"
        while True:
            try:
                reply = self._upload_once(blob)
            except NoAnswerError as err:
                why, final = err.message.rpartition(" failed: ")[2] or "no answer", err.final
            else:
                if reply.status == 201:
                    return
                why, final = f"answered {reply.status} {reply.message()}", reply.final
            # what Http tried again already (refused, 429, 503) is not tried again here
            if final or not self.http.waiting(tries, what, f"{why}; in a new upload session"):
                raise PublishError(
                    self.http.redact(f"{self.name}: {what} failed: {why}{_after(tries.tries)}"),
                    "run the same command again; what the registry already has is skipped",
                )
            if self._has_blob(blob.digest):
                return  # the broken upload arrived after all

    def _upload_once(self, blob: Blob) -> Response:
        """One upload of ``blob``: its answer when it is one worth a new session (201, or an
        error that may pass), a PublishError for any other."""
        # Starting a session changes nothing visible (an unused one expires): tried again freely.
        started = self._call(
            "POST", f"{self.base}/blobs/uploads/", ok=(202,), allow=(), idempotent=True
        )
        location = started.headers.get("location")
        if not location:
            raise PublishError(f"{self.name}: the registry gave no upload location")
        location = urllib.parse.urljoin(self.base + "/", location)
        parts = urllib.parse.urlsplit(location)
        plain_elsewhere = parts.scheme == "http" and not (
            self._own(location) or is_local_host(parts.netloc)
        )
        if parts.scheme not in ("http", "https") or plain_elsewhere:
            raise PublishError(
                f"{self.name}: the registry sends the upload to {strip_query(location)}, "
                "plain HTTP to another host (or not http at all); refused",
                "check the registry's configuration (its http.host setting)",
            )
        separator = "&" if "?" in location else "?"
        url = f"{location}{separator}{urllib.parse.urlencode({'digest': blob.digest})}"
        # Not sent twice to one session (a session an upload broke off in may be gone or hold
        # half a blob): a failure that may pass comes back to _put_blob, which starts anew.
        reply = self._call(
            "PUT",
            url,
            body=blob.data,
            headers={"Content-Type": "application/octet-stream"},
            ok=(201,),
            allow=tuple(sorted(RESTART_STATUSES)),
            idempotent=False,
        )
        if reply.status == 404 and _error_code(reply) not in SESSION_GONE:
            raise PublishError(
                self.http.redact(
                    f"{self.name}: PUT {strip_query(url)} answered 404 {reply.message()}"
                ),
                "run the same command again; what the registry already has is skipped",
            )
        return reply


# A blob upload answered with one of these starts again in a new session: errors that may pass,
# and the session having been lost (404 BLOB_UPLOAD_UNKNOWN).
RESTART_STATUSES = frozenset(RETRY_STATUSES | {500, 404})
SESSION_GONE = ("BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID")


def _error_code(reply: Response) -> str:
    data = reply.json()
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("code") or "")
    return ""


def _after(tries: int) -> str:
    return f" (after {tries} tries)" if tries > 1 else ""
