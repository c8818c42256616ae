"""Publish a verified build: to a directory, a GitHub release, or an OCI registry.

Every target has one small interface (:class:`Target`): ``has`` says whether the target already
holds a build, ``plan`` lists what publishing would do (it reads the target, never writes it), and
``push`` does it, or with ``dry_run`` only says what it would do. Publishing is idempotent: a
file already there with the same sha256 is skipped, a different one of the same name is refused
(never overwritten), and what marks a build as complete (the directory rename, the
``manifest.json`` asset, the image tag) is written last, so an interrupted publish is finished by
running it again.

Only a build whose verification passed is published: :func:`load_build` checks ``manifest.json``,
``verify.json`` and every binary's sha256 before any target is touched.

Where to read what:

- ``build``: loading and checking a build directory (:func:`load_build`, :func:`existing_build`)
- ``plan``: the :class:`Target` protocol, :class:`Action` and :class:`PublishResult`
- ``http``: the HTTP client the remote targets share, with auth and redirect rules and the
  retry policy (backoff, ``Retry-After``)
- ``credentials``: credentials besides the environment: the Docker config and its credential
  helpers, ``gh auth token``
- ``directory``, ``github``, ``oci``: one module per target
- ``targets``: a target from its text form, and the :func:`push` entry points

This module only re-exports their public names.
"""

from longcert.errors import ConfigError, PublishError
from longcert.publish.build import (
    METADATA_FILES,
    VERIFIED_STATUSES,
    Build,
    BuildFile,
    BuildRef,
    existing_build,
    load_build,
)
from longcert.publish.credentials import (
    credential_helper,
    docker_credentials,
    gh_hostname,
    gh_token,
)
from longcert.publish.directory import DirectoryTarget
from longcert.publish.github import (
    CONTENT_TYPES,
    GITHUB_JSON,
    TOKEN_ENV,
    GitHubTarget,
    release_notes,
    release_title,
)
from longcert.publish.http import (
    HTTP_TIMEOUT,
    NO_RETRIES,
    Http,
    Response,
    RetryPolicy,
    credentials_allowed,
    parse_retry_after,
)
from longcert.publish.oci import (
    OCI_PASSWORD_ENV,
    OCI_USER_ENV,
    OciTarget,
    parse_challenge,
    registry_credentials,
)
from longcert.publish.ociimages import (
    GOARM_VARIANT,
    MANIFEST_ACCEPT,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Blob,
    ImageSet,
    PlatformImage,
    oci_images,
)
from longcert.publish.plan import Action, ProgressFn, PublishResult, Target
from longcert.publish.runcheck import check_binaries_run
from longcert.publish.targets import (
    TARGET_FORMS,
    oci_references,
    open_target,
    parse_target,
    publish_directory,
    push,
    retry_policy,
)
from longcert.settings import is_local_host

__all__ = [
    "CONTENT_TYPES",
    "GITHUB_JSON",
    "GOARM_VARIANT",
    "HTTP_TIMEOUT",
    "MANIFEST_ACCEPT",
    "METADATA_FILES",
    "NO_RETRIES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "OCI_PASSWORD_ENV",
    "OCI_USER_ENV",
    "TARGET_FORMS",
    "TOKEN_ENV",
    "VERIFIED_STATUSES",
    "Action",
    "Blob",
    "Build",
    "BuildFile",
    "BuildRef",
    "ConfigError",
    "DirectoryTarget",
    "GitHubTarget",
    "Http",
    "ImageSet",
    "OciTarget",
    "PlatformImage",
    "ProgressFn",
    "PublishError",
    "PublishResult",
    "Response",
    "RetryPolicy",
    "Target",
    "check_binaries_run",
    "credential_helper",
    "credentials_allowed",
    "docker_credentials",
    "existing_build",
    "gh_hostname",
    "gh_token",
    "is_local_host",
    "load_build",
    "oci_images",
    "oci_references",
    "open_target",
    "parse_challenge",
    "parse_retry_after",
    "parse_target",
    "publish_directory",
    "push",
    "registry_credentials",
    "release_notes",
    "release_title",
    "retry_policy",
]
