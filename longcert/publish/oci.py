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
import hashlib
import re
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from longcert import __version__
from longcert.errors import NoAnswerError, PublishError
from longcert.publish import ocisign
from longcert.publish.build import Build, BuildRef
from longcert.publish.credentials import OCI_PASSWORD_ENV as OCI_PASSWORD_ENV
from longcert.publish.credentials import OCI_USER_ENV as OCI_USER_ENV
from longcert.publish.credentials import registry_credentials as registry_credentials
from longcert.publish.http import (
    RETRY_STATUSES,
    Http,
    Response,
    RetryPolicy,
    credentials_allowed,
    origin,
    strip_query,
)
from longcert.publish.ociimages import (
    MANIFEST_ACCEPT,
    OCI_INDEX,
    Blob,
    ImageSet,
    oci_images,
)
from longcert.publish.plan import Action, ProgressFn, PublishResult, quiet
from longcert.publish.signing import Signer
from longcert.settings import is_local_host

# (user, password), a function that looks them up when the registry first asks, or None.
Credentials = tuple[str, str] | Callable[[], tuple[str, str] | None] | None


def image_references(build: Build, target: OciTarget) -> list[tuple[str, str, str]]:
    """(what, HOST/REPOSITORY@DIGEST, SBOM file or "-") of the index ("index") and of each
    platform image that publishing ``build`` to ``target`` makes: computed from the build
    alone, as the images are reproducible, for signing them afterwards (``cosign sign``)."""
    images = target.images(build)
    name = f"{target.host}/{target.repository}"
    rows = [("index", f"{name}@{images.index.digest}", "-")]
    for image in images.images:
        binary = next(b for b in build.binaries if b.platform == image.platform)
        rows.append((image.platform, f"{name}@{image.manifest.digest}",
                     str(build.path / f"{binary.name}.spdx.json")))
    return rows


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
        signer: Signer | None = None,
    ) -> None:
        """``credentials``: (user, password), or a function that looks them up (called once,
        only when the registry asks for credentials), or None for none. ``signer``: sign the
        images and their attestations with this key (``--sign-key``)."""
        self.signer = signer
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
        return [action for action, _ in self._planned(build)]

    def _planned(self, build: Build) -> list[tuple[Action, Callable[[], None] | None]]:
        """Every step of publishing ``build``: its action, and what carries it out (None for a
        skip). The index tag comes last: a tag that is there means everything else is."""
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
            # a build published unsigned before gets its signatures now
            return [
                *self._signing_steps(build, images),
                (Action("skip", ref, self.name, reason="already there, same digest"), None),
            ]
        steps: list[tuple[Action, Callable[[], None] | None]] = []
        for image in images.images:
            for blob, what in ((image.layer, "layer"), (image.config, "config")):
                steps.append(self._blob_step(f"{image.platform} {what}", blob))
            steps.append(self._manifest_step(f"{image.platform} image", image.manifest))
        for item in images.attestations:
            for blob in (*item.layers, item.config):
                steps.append(self._blob_step(f"{item.platform} attestation blob", blob))
            steps.append(self._manifest_step(f"{item.platform} attestation", item.manifest))
        steps += self._signing_steps(build, images)
        steps.append(
            (
                Action("upload", f"index {ref}", self.name, len(images.index.data)),
                lambda: self._put_manifest(build.image_tag, images.index),
            )
        )
        return steps

    def _blob_step(self, what: str, blob: Blob) -> tuple[Action, Callable[[], None] | None]:
        label = f"{what} {blob.digest[:19]}"
        if self._has_blob(blob.digest):
            return Action("skip", label, self.name, reason="blob already there"), None
        return Action("upload", label, self.name, len(blob.data)), lambda: self._put_blob(blob)

    def _manifest_step(
        self, what: str, manifest: Blob
    ) -> tuple[Action, Callable[[], None] | None]:
        label = f"{what} {manifest.digest[:19]}"
        if self._has_manifest(manifest.digest):
            return Action("skip", label, self.name, reason="already there"), None
        return (
            Action("upload", label, self.name, len(manifest.data)),
            lambda: self._put_manifest(manifest.digest, manifest),
        )

    def _put_manifest(self, reference: str, manifest: Blob) -> None:
        self._call(
            "PUT",
            f"{self.base}/manifests/{reference}",
            body=manifest.data,
            headers={"Content-Type": manifest.media_type},
            ok=(201, 200),
        )

    def _signing_steps(
        self, build: Build, images: ImageSet
    ) -> list[tuple[Action, Callable[[], None] | None]]:
        """With a signing key: the cosign signature and attestation tags of the index and of
        each platform image, and the attestations as referrers (see :mod:`ocisign`)."""
        if self.signer is None:
            return []
        signed = self._signatures(build, images)
        steps: list[tuple[Action, Callable[[], None] | None]] = []
        for tag in signed.tags:
            steps += [self._blob_step(f"{tag.what} blob", blob) for blob in tag.blobs]
            steps.append(self._cosign_tag_step(tag))
        referrers_api: dict[str, bool] = {}
        for referrer in signed.referrers:
            steps += [
                self._blob_step(f"{referrer.what} blob", blob)
                for blob in (referrer.envelope, ocisign.EMPTY_CONFIG)
            ]
            steps.append(self._manifest_step(referrer.what, referrer.manifest))
            if referrer.subject not in referrers_api:
                referrers_api[referrer.subject] = self._has_referrers_api(referrer.subject)
        for subject, supported in referrers_api.items():
            if not supported:
                ours = [r.descriptor for r in signed.referrers if r.subject == subject]
                steps.append(self._referrers_tag_step(subject, ours))
        return steps

    def _signatures(self, build: Build, images: ImageSet) -> ocisign.Signatures:
        assert self.signer is not None and images.documents is not None
        provenance, sboms = images.documents.provenance, images.documents.sboms
        if not isinstance(provenance, dict):
            raise PublishError(f"{build.path}: provenance.json is not an in-toto statement")
        subjects = [("index", images.index)]
        subjects += [(image.platform, image.manifest) for image in images.images]
        return ocisign.sign_images(
            f"{self.host}/{self.repository}", subjects, provenance, sboms, self.signer
        )

    def _cosign_tag_step(
        self, tag: ocisign.CosignTag
    ) -> tuple[Action, Callable[[], None] | None]:
        """The .sig/.att tag: skipped when it lists our layers already, else written with what
        it lists and ours (a tag cosign made for another key or keyless keeps those)."""
        existing = self._existing(tag.tag)
        try:
            layers = ocisign.merged_layers(existing.body if existing else None, tag.layers)
        except ValueError as exc:
            raise PublishError(
                f"{self.name}:{tag.tag} holds something longcert will not add to: {exc}",
                "look at that tag in the registry; delete it if it is not cosign's",
            ) from exc
        if layers is None:
            return Action("skip", tag.what, self.name, reason="already signed"), None
        config, manifest = ocisign.cosign_manifest(layers)

        def put() -> None:
            self._put_blob_unless_there(config)
            self._put_manifest(tag.tag, manifest)

        return Action("upload", f"{tag.what} {tag.tag}", self.name, len(manifest.data)), put

    def _has_referrers_api(self, digest: str) -> bool:
        """Whether the registry lists referrers itself (OCI distribution 1.1); else the
        fallback tag ``sha256-<hex>`` lists them."""
        reply = self._call(
            "GET",
            f"{self.base}/referrers/{digest}",
            headers={"Accept": OCI_INDEX},
            allow=(404, 400, 405),
        )
        return reply.status == 200 and reply.headers.get("content-type", "").startswith(OCI_INDEX)

    def _referrers_tag_step(
        self, subject: str, ours: list[dict[str, Any]]
    ) -> tuple[Action, Callable[[], None] | None]:
        tag = ocisign.cosign_tag(subject, "")
        existing = self._existing(tag)
        try:
            index = ocisign.merged_referrers(existing.body if existing else None, ours)
        except ValueError as exc:
            raise PublishError(
                f"{self.name}:{tag} holds something longcert will not add referrers to: {exc}"
            ) from exc
        what = f"referrers of {subject[:19]}"
        if index is None:
            return Action("skip", what, self.name, reason="already listed"), None
        return (
            Action("upload", f"{what} (tag {tag[:19]})", self.name, len(index.data)),
            lambda: self._put_manifest(tag, index),
        )

    def push(
        self, build: Build, dry_run: bool = False, progress: ProgressFn | None = None
    ) -> PublishResult:
        say = progress or quiet
        self.http.notify = say  # a retry says so
        steps = self._planned(build)
        actions = [action for action, _ in steps]
        ref = self.reference(build)
        for action, carry_out in steps:
            say(action.describe(dry_run))
            if carry_out is not None and not dry_run:
                carry_out()
        return PublishResult.of(self.name, ref, actions, dry_run)

    def _put_blob_unless_there(self, blob: Blob) -> None:
        if not self._has_blob(blob.digest):
            self._put_blob(blob)

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
