"""Publish to GitHub (or GitHub Enterprise) Releases: one release per build, tagged with the
build id, with the binaries and the metadata files as assets and notes made from manifest.json.

The release is made as a draft, filled with every asset, then published, so nobody sees a
half-filled release; a re-run finds the draft (in the list of releases, since GitHub's lookup by
tag shows no drafts) and finishes it. An asset already there with the same sha256 is skipped, a
different one is refused, an upload that did not finish is replaced, and ``manifest.json`` is
uploaded last.

Requests are tried again as the target's :class:`~longcert.publish.http.RetryPolicy` says. The
two that create something are not simply sent again when their answer is lost: a release that
may have been made is looked for first, and an upload that broke off (which leaves a "starter"
asset, or a complete one) is checked, deleted unless it is complete and right, and sent again.
The token comes from ``GITHUB_TOKEN``, else from ``gh auth token`` (see
:mod:`longcert.publish.credentials`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from longcert import __version__
from longcert.errors import NoAnswerError, PublishError
from longcert.publish.build import Build, BuildFile, BuildRef
from longcert.publish.http import (
    RETRY_STATUSES,
    Http,
    Response,
    RetryPolicy,
    credentials_allowed,
    host_of,
    strip_query,
)
from longcert.publish.plan import Action, ProgressFn, PublishResult, human_size, quiet
from longcert.publish.signing import Signer
from longcert.verify.report import checks_phrase

TOKEN_ENV = "GITHUB_TOKEN"
GH_SOURCE = "`gh auth token`"
# A create (release, asset upload) answered with one of these, or not answered, is re-checked
# and sent again: errors that may pass, which may or may not have left something behind.
RECHECK_STATUSES = frozenset(RETRY_STATUSES | {500})
Found = TypeVar("Found")  # what a recheck after a lost POST finds it made
GITHUB_JSON = "application/vnd.github+json"
CONTENT_TYPES = {
    "manifest.json": "application/json",
    "SHA256SUMS": "text/plain",
    "patch.diff": "text/x-diff",
    "kit.tar.gz": "application/gzip",
    "report.html": "text/html; charset=utf-8",
    "REPORT.md": "text/markdown; charset=utf-8",
}


def release_title(build: BuildRef) -> str:
    """The release's title, also the OCI images' description."""
    return f"kubeadm {build.tag}: leaf certificates {build.leaf_years}y, CAs {build.ca_years}y"


def _checked_phrase(entry: Mapping[str, Any]) -> str:
    """What one platform's verification covered, counted as the build counts it; a build
    written before manifest.json kept that count says how many init certificates it checked."""
    checks, scenarios = entry.get("checks"), entry.get("scenarios")
    if isinstance(checks, int) and isinstance(scenarios, int):
        return checks_phrase(checks, scenarios)
    return f"{entry.get('certificates_checked', 0)} certificates"


def release_notes(build: Build, repository: str = "OWNER/REPO") -> str:
    """Markdown notes from manifest.json: version, validities, Go, patch, verification, sha256,
    how to install the binary and check its attestation (``repository``: OWNER/REPO of the
    release)."""
    m = build.manifest
    kube, validity, go = m.get("kubernetes", {}), m.get("validity", {}), m.get("go", {})
    patch, verification = m.get("patch", {}), m.get("verification", {})
    tool = m.get("tool", {})
    platforms = verification.get("platforms", {}) if isinstance(verification, dict) else {}
    checked = ", ".join(
        f"{p} {v.get('status')} ({_checked_phrase(v)})"
        for p, v in platforms.items()
        if isinstance(v, dict)
    )
    lines = [
        f"kubeadm **{build.tag}** with the certificate validity changed, built and verified "
        f"by longcert {tool.get('version', '?')}.",
        "",
        "| | |",
        "|---|---|",
        f"| Kubernetes | {kube.get('tag', build.tag)} (commit `{kube.get('commit', '?')}`) |",
        f"| leaf certificates | {validity.get('leaf_years', build.leaf_years)} years "
        f"({validity.get('leaf_hours', '?')}h) |",
        f"| CAs | {validity.get('ca_years', build.ca_years)} years "
        f"({validity.get('ca_hours', '?')}h) |",
        f"| Go | {go.get('version', '?')} (from {go.get('source', '?')}) |",
        f"| patch set | {patch.get('set', '?')}, diff sha256 `{patch.get('diff_sha256', '?')}` |",
        f"| verification | {'passed' if verification.get('passed') else 'NOT passed'}"
        f"{': ' + checked if checked else ''} |",
        f"| built | {m.get('created', '?')} |",
        "",
        "| file | platform | size | sha256 |",
        "|---|---|---|---|",
    ]
    for item in build.files:
        if item.name == "manifest.json":
            continue  # its own sha256 cannot be in the notes it generates
        size = human_size(item.size)
        lines.append(f"| `{item.name}` | {item.platform or '-'} | {size} | `{item.sha256}` |")
    names = {item.name for item in build.files}
    lines += [
        "",
        "Check the downloads with `sha256sum -c SHA256SUMS`; `patch.diff` is the exact change "
        "to the Kubernetes source."
        + (
            " `report.html` shows every certificate checked and its validity timeline."
            if "report.html" in names
            else ""
        ),
    ]
    unix = [b for b in build.binaries if not b.platform.startswith("windows/")]
    binary = next((b for b in unix if b.platform == "linux/amd64"), unix[0] if unix else None)
    if binary is not None:
        base = f"https://github.com/{repository}/releases/download/{build.build_id}"
        lines += [
            "",
            "Install:",
            "",
            "```sh",
            f"curl -fLO {base}/{binary.name}",
            f"curl -fLO {base}/SHA256SUMS",
            "sha256sum -c SHA256SUMS --ignore-missing",
            f"gh attestation verify {binary.name} --repo {repository} \\",
            f"  --signer-workflow {repository}/.github/workflows/release.yml",
            f"sudo install -m 0755 {binary.name} /usr/local/bin/kubeadm",
            "```",
        ]
    return "\n".join(lines) + "\n"


def workflow_commit(owner: str, repo: str) -> str:
    """The commit of OWNER/REPO a GitHub Actions run is building (``GITHUB_SHA``) when the
    release goes to the repository the workflow runs in; "" anywhere else. Without it GitHub
    tags the default branch's head at publish time, which may be a later commit than the one
    whose workflow made the build."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return ""
    if os.environ.get("GITHUB_REPOSITORY", "").lower() != f"{owner}/{repo}".lower():
        return ""
    commit = os.environ.get("GITHUB_SHA", "")
    return commit if re.fullmatch(r"[0-9a-f]{40}", commit) else ""


class GitHubTarget:
    """A GitHub (or GitHub Enterprise) release per build, tagged with the build id."""

    def __init__(
        self,
        owner: str,
        repo: str,
        api_url: str,
        token: str | None,
        *,
        token_source: str = TOKEN_ENV,
        retry: RetryPolicy | None = None,
        signer: Signer | None = None,
    ) -> None:
        """``token_source`` names where the token came from, for messages (never the token);
        ``signer``: the key SHA256SUMS.sig is made with (--sign-key), or None."""
        self.signer = signer
        self.owner = owner
        self.repo = repo
        self.api_url = api_url.rstrip("/")
        self._token = token or ""
        self.token_source = token_source
        self.http = Http(f"github:{owner}/{repo}", secrets=(self._token,), retry=retry)
        if self._token and not credentials_allowed(self.api_url):
            raise PublishError(
                f"{self.name}: {token_source} would be sent over plain HTTP to "
                f"{host_of(self.api_url)} (github_api_url {self.api_url})",
                "use an https:// github_api_url; plain HTTP is only for this machine's loopback",
            )

    @property
    def name(self) -> str:
        return f"github:{self.owner}/{self.repo}"

    @property
    def has_token(self) -> bool:
        return bool(self._token)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _call(
        self,
        method: str,
        url: str,
        *,
        payload: Any = None,
        body: Path | None = None,
        content_type: str = "",
        ok: tuple[int, ...] = (200,),
        allow: tuple[int, ...] = (),
        accept: str = GITHUB_JSON,
        idempotent: bool | None = None,
    ) -> Response:
        headers = {
            "Accept": accept,
            "User-Agent": f"longcert/{__version__}",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        data: bytes | Path | None = body
        if payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        elif content_type:
            headers["Content-Type"] = content_type
        reply = self.http.request(
            method,
            url,
            headers=headers,
            secret_headers=self._auth(),
            body=data,
            idempotent=idempotent,
        )
        if reply.status in ok or reply.status in allow:
            return reply
        raise self._error(method, url, reply)

    def _error(self, method: str, url: str, reply: Response) -> PublishError:
        return PublishError(
            self.http.redact(
                f"{self.name}: {method} {strip_query(url)} answered {reply.status} "
                f"{reply.message()}{reply.after()}"
            ),
            self._hint(reply.status, reply),
        )

    def _hint(self, status: int, reply: Response | None = None) -> str:
        limited = reply is not None and (
            status == 429
            or "retry-after" in reply.headers
            or reply.headers.get("x-ratelimit-remaining") == "0"
        )
        if limited:
            return "GitHub's rate limit: wait a while, then run the same command again"
        if status in (401, 403):
            return (
                f"check {self.token_source}: it must be valid for {self.owner}/{self.repo} "
                "with contents: write"
            )
        if status == 404:
            return f"check that {self.owner}/{self.repo} exists and github_api_url ({self.api_url})"
        return "run the same command again; what is already uploaded is skipped"

    def _repo_url(self, path: str) -> str:
        return f"{self.api_url}/repos/{self.owner}/{self.repo}/{path}"

    def _published(self, build: BuildRef) -> dict[str, Any] | None:
        """The published release tagged with the build id; GitHub's lookup by tag never
        answers with a draft."""
        tag = urllib.parse.quote(build.build_id, safe="")
        reply = self._call("GET", self._repo_url(f"releases/tags/{tag}"), allow=(404,))
        data = reply.json()
        if reply.status == 200 and isinstance(data, dict) and not data.get("draft"):
            return data
        return None

    def _drafts(self, build: BuildRef) -> list[dict[str, Any]]:
        """Draft releases for the build id, oldest first. Only the list of all releases shows
        drafts, and a draft does not hold its tag, so two runs may each have made one."""
        drafts: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self._call("GET", self._repo_url(f"releases?per_page=100&page={page}")).json()
            if not isinstance(batch, list):
                raise PublishError(f"{self.name}: unexpected answer listing releases")
            drafts += [
                r
                for r in batch
                if isinstance(r, dict) and r.get("draft") and r.get("tag_name") == build.build_id
            ]
            if len(batch) < 100:
                return sorted(drafts, key=lambda r: int(r.get("id", 0)))
            page += 1

    def _release(self, build: BuildRef) -> dict[str, Any] | None:
        """The build's published release, else the draft an interrupted publish left, else None."""
        published = self._published(build)
        if published is not None:
            return published
        drafts = self._drafts(build)
        return drafts[0] if drafts else None

    def _assets(self, release: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        assets: dict[str, dict[str, Any]] = {}
        page = 1
        while True:
            url = self._repo_url(f"releases/{release['id']}/assets?per_page=100&page={page}")
            batch = self._call("GET", url).json()
            if not isinstance(batch, list):
                raise PublishError(f"{self.name}: unexpected answer listing release assets")
            for asset in batch:
                assets[str(asset["name"])] = asset
            if len(batch) < 100:
                return assets
            page += 1

    def has(self, build: BuildRef) -> bool:
        # A draft does not count: it is published only once every asset is there.
        release = self._published(build)
        if release is None:
            return False
        manifest = self._assets(release).get("manifest.json")
        return manifest is not None and manifest.get("state", "uploaded") == "uploaded"

    def _asset_sha256(self, asset: Mapping[str, Any]) -> str:
        digest = str(asset.get("digest") or "")
        if digest.startswith("sha256:"):
            return digest.removeprefix("sha256:")
        # Older GitHub Enterprise servers have no digest field: download the asset and hash it.
        reply = self._call(
            "GET",
            self._repo_url(f"releases/assets/{asset['id']}"),
            accept="application/octet-stream",
        )
        return hashlib.sha256(reply.body).hexdigest()

    def _plan(self, build: Build, release: Mapping[str, Any] | None) -> list[Action]:
        where = f"{self.name} release {build.build_id}"
        actions = []
        if release is None:
            actions.append(Action("create", f"draft release {build.build_id}", self.name))
        assets = self._assets(release) if release is not None else {}
        for item in build.files:
            asset = assets.get(item.name)
            if asset is None:
                actions.append(Action("upload", item.name, where, item.size))
            elif asset.get("state", "uploaded") != "uploaded":
                actions.append(
                    Action(
                        "replace", item.name, where, item.size, "an earlier upload did not finish"
                    )
                )
            elif (
                int(asset.get("size", -1)) == item.size and self._asset_sha256(asset) == item.sha256
            ):
                actions.append(
                    Action("skip", item.name, where, item.size, "already there, same sha256")
                )
            else:
                raise PublishError(
                    f"{where} already has a different {item.name}",
                    "a published asset is never overwritten: delete it (or the release) on "
                    "GitHub to publish this build instead",
                )
        # Published last, once every asset is there: nobody sees a half-filled release.
        if release is None:
            actions.append(Action("publish", f"release {build.build_id}", self.name))
        elif release.get("draft"):
            actions.append(
                Action(
                    "finish",
                    f"draft release {build.build_id}",
                    self.name,
                    reason="an earlier publish stopped before publishing it",
                )
            )
        return actions

    def plan(self, build: Build) -> list[Action]:
        return self._plan(build, self._release(build))

    def push(
        self, build: Build, dry_run: bool = False, progress: ProgressFn | None = None
    ) -> PublishResult:
        say = progress or quiet
        self.http.notify = say  # a retry says so
        release = self._release(build)
        actions = self._plan(build, release)
        if dry_run or all(a.verb == "skip" for a in actions):
            for action in actions:
                say(action.describe(dry_run))
            return PublishResult.of(self.name, self._location(build, release), actions, dry_run)
        if release is None:
            say(actions[0].describe())
            release = self._create_draft(build)
        assets = self._assets(release)
        files = {f.name: f for f in build.files}
        for action in actions:
            if action.verb == "create":
                continue  # said above
            say(action.describe())
            if action.verb in ("publish", "finish"):
                release = self._publish_draft(build, release)
            elif action.verb != "skip":
                old = assets.get(action.name)
                if old is not None:
                    self._call(
                        "DELETE",
                        self._repo_url(f"releases/assets/{old['id']}"),
                        ok=(204,),
                        allow=(404,),
                    )
                self._upload(release, files[action.name])
        return PublishResult.of(self.name, self._location(build, release), actions, dry_run)

    def _location(self, build: BuildRef, release: Mapping[str, Any] | None) -> str:
        """The published release's page; a draft's page is not public, so name it instead."""
        if release is None or release.get("draft") or not release.get("html_url"):
            return f"{self.name} release {build.build_id}"
        return str(release["html_url"])

    def _create_draft(self, build: Build) -> dict[str, Any]:
        """A draft release for the build: invisible to users until :meth:`_publish_draft`."""
        payload = {
            "tag_name": build.build_id,
            "name": release_title(build),
            "body": release_notes(build, f"{self.owner}/{self.repo}"),
            "draft": True,
            "prerelease": "-" in build.tag,
            "make_latest": "false",
        }
        commit = workflow_commit(self.owner, self.repo)
        if commit:  # the tag goes where the build was made, not the branch head at publish
            payload["target_commitish"] = commit
        reply = self._create_release(build, payload)
        if isinstance(reply, dict):
            return reply  # the release a request whose answer was lost made
        if reply.status == 422:  # published meanwhile by a concurrent run: use that one
            existing = self._release(build)
            if existing is None:
                raise PublishError(
                    f"{self.name}: creating release {build.build_id} was refused: "
                    f"{reply.message()}",
                    "check that the tag name is free in the repository",
                )
            return existing
        data = reply.json()
        if not isinstance(data, dict) or "upload_url" not in data:
            raise PublishError(f"{self.name}: creating release {build.build_id} gave no upload URL")
        oldest = self._drafts(build)[:1]
        if oldest and oldest[0].get("id") != data.get("id"):
            # Another run made a draft of this build first: both runs fill that one, and this
            # run's draft, still empty, goes.
            self._call("DELETE", self._repo_url(f"releases/{data['id']}"), ok=(204,), allow=(404,))
            return oldest[0]
        return data

    def _create_release(
        self, build: BuildRef, payload: Mapping[str, Any]
    ) -> Response | dict[str, Any]:
        """POST the draft release. A request that got no answer, or an answer that may pass, is
        not just sent again: the draft it may have made is looked for first (and used)."""
        url = self._repo_url("releases")
        return self._rechecked_post(
            url,
            f"creating draft release {build.build_id}",
            lambda: self._call("POST", url, payload=payload, ok=(201,),
                               allow=(422, *RECHECK_STATUSES), idempotent=False),
            lambda: self._release(build),
        )

    def _rechecked_post(
        self,
        url: str,
        what: str,
        post: Callable[[], Response],
        recheck: Callable[[], Found | None],
    ) -> Response | Found:
        """``post`` (a POST that must not simply be sent twice) until it gets an answer that is
        not a maybe (one of RECHECK_STATUSES) or none at all. After such a maybe, while Http's
        retry policy allows another try, ``recheck`` looks at what the earlier try may have
        done: what it finds (not None) is the answer, else ``post`` is sent again."""
        tries = self.http.retries()
        failure: PublishError
        while True:
            try:
                reply = post()
            except NoAnswerError as err:
                why, failure, final = err.message.rpartition(" failed: ")[2], err, err.final
            else:
                if reply.status not in RECHECK_STATUSES:
                    return reply
                why = f"answered {reply.status} {reply.message()}"
                failure, final = self._error("POST", url, reply), reply.final
            # what Http tried again already (refused, 429, 503) is not tried again here
            if final or not self.http.waiting(tries, what, why):
                raise failure
            found = recheck()
            if found is not None:
                return found

    def _publish_draft(self, build: BuildRef, release: Mapping[str, Any]) -> dict[str, Any]:
        """Publish the draft, now that it holds every asset: GitHub makes the tag and shows it.
        Sending this twice does no harm (the second finds it published), so it is retried."""
        reply = self._call(
            "PATCH",
            self._repo_url(f"releases/{release['id']}"),
            payload={"draft": False, "make_latest": "false"},
            idempotent=True,
        )
        data = reply.json()
        if not isinstance(data, dict) or data.get("draft") is not False:
            raise PublishError(
                f"{self.name}: publishing draft release {build.build_id} did not publish it",
                "run the same command again; it finishes the draft",
            )
        return data

    def _upload(self, release: Mapping[str, Any], item: BuildFile) -> None:
        try:
            self._upload_retrying(release, item)
        except PublishError as err:
            raise PublishError(
                f"uploading {item.name} to {self.name} failed: {err.message}",
                "run the same command again: assets already uploaded are skipped and an "
                "unfinished one is replaced",
            ) from None

    def _upload_retrying(self, release: Mapping[str, Any], item: BuildFile) -> None:
        """Upload one asset. An upload that broke off or got an answer that may pass is checked
        before it is sent again: an asset it left that is complete and right is kept, any other
        (a "starter" asset, half a file) is deleted first, as GitHub asks."""
        base = str(release["upload_url"]).split("{", 1)[0]
        url = f"{base}?{urllib.parse.urlencode({'name': item.name})}"

        def arrived() -> bool | None:
            """True when the upload arrived after all; None (after deleting what an unfinished
            one left) to send it again."""
            left = self._assets(release).get(item.name)
            if left is None:
                return None
            if (
                left.get("state", "uploaded") == "uploaded"
                and int(left.get("size", -1)) == item.size
                and self._asset_sha256(left) == item.sha256
            ):
                return True
            self._call(
                "DELETE",
                self._repo_url(f"releases/assets/{left['id']}"),
                ok=(204,),
                allow=(404,),
            )
            return None

        self._rechecked_post(
            url,
            f"upload of {item.name}",
            lambda: self._call(
                "POST",
                url,
                body=item.path,
                ok=(201,),
                allow=tuple(sorted(RECHECK_STATUSES)),
                content_type=CONTENT_TYPES.get(item.name, "application/octet-stream"),
                idempotent=False,
            ),
            arrived,
        )
