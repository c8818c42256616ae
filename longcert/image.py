"""Which builder image compiles a tree, and whether upstream's scripts can run in it.

Three steps, each before any compiling:

* **choose**: ``golang:<the tree's Go>`` if present or pullable; otherwise, with ``--go-version
  auto``, the nearest other local image of the same name whose Go the minor's rule and
  ceiling in ``config/go-versions.yaml`` accept and the tree's vendored code is not known to
  crash on (``config/go-incompatibilities.yaml``); otherwise an ImageError giving the exact
  ``longcert builder-image`` command that makes the missing one and why each local image was
  passed over.
* **probe**: one short container (no network) lists what the image has: bash, make, find,
  rsync, git, gcc, sh, the Go on PATH (or in /usr/local/go), its version, GOROOT and GOPATH.
  The result is cached by image id, so an image is probed once.
* **assess**: what upstream's ``make all`` needs and cannot be made up for (sh, bash, make,
  find, a Go for this platform, at least go.mod's ``go`` line) is an ImageError naming the image
  and what it lacks; what can be (official golang images have no rsync, which
  ``kube::golang::place_bins`` calls as ``rsync -pc FILE DIR``) is supplied as a small
  read-only helper on PATH, never by giving the build a network.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from longcert import container, gotrace, runs
from longcert.errors import ImageError
from longcert.versions import (
    GO_RULES,
    GoPolicy,
    GoVersion,
    go_key,
    go_minor,
    is_go_version,
)

LineFn = Callable[[str], None]

# Where the build container finds longcert's helpers (the meta dir, mounted read-only).
TOOLS_DIR = "/longcert/meta/tools"
REQUIRED_TOOLS = ("sh", "bash", "make", "find")
PROBED_TOOLS = (*REQUIRED_TOOLS, "rsync", "git", "gcc", "cp")
# Where golang images keep Go when it is not on PATH.
GO_CANDIDATES = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")

# Run by /bin/sh in the image. A constant: nothing from the user is pasted in.
PROBE_SCRIPT = r"""
for tool in """ + " ".join(PROBED_TOOLS) + r"""; do
  printf 'tool %s %s\n' "$tool" "$(command -v "$tool" 2>/dev/null || echo -)"
done
printf 'path %s\n' "$PATH"
gobin="$(command -v go 2>/dev/null || true)"
if [ -z "$gobin" ]; then
  for candidate in """ + " ".join(GO_CANDIDATES) + r"""; do
    if [ -x "$candidate" ]; then gobin="$candidate"; break; fi
  done
fi
printf 'gobin %s\n' "${gobin:--}"
if [ -n "$gobin" ]; then
  export GOTOOLCHAIN=local GOFLAGS= GO111MODULE=off
  "$gobin" version 2>&1 | head -n 1 | sed 's/^/goversion /'
  for var in GOROOT GOPATH GOOS GOARCH; do
    printf 'goenv %s %s\n' "$var" "$("$gobin" env "$var" 2>/dev/null)"
  done
fi
"""

# Stands in for rsync where the image has none. Upstream's `make all` calls only
# `rsync -pc FILE... DIR` (kube::golang::place_bins: copy a built binary into _output), which
# is a copy; any other use is refused loudly instead of being half-done.
RSYNC_SHIM = r"""#!/bin/sh
# longcert: the builder image has no rsync; this copies files the way `rsync -pc FILE... DIR`
# does (permissions kept) and refuses anything else.
set -eu
preserve=""
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    -*)
      flags="${1#-}"
      case "$flags" in
        *[!pcvtq]*)
          echo "longcert rsync helper: unsupported option $1 (the image has no rsync)" >&2
          exit 1 ;;
      esac
      case "$flags" in *p*) preserve=1 ;; esac
      shift ;;
    *) break ;;
  esac
done
if [ $# -lt 2 ]; then echo "longcert rsync helper: usage: rsync -pc FILE... DEST" >&2; exit 1; fi
for dest do :; done
count=$#
index=1
for src do
  if [ "$index" -ge "$count" ]; then break; fi
  if [ ! -f "$src" ]; then echo "longcert rsync helper: $src is not a file" >&2; exit 1; fi
  if [ -n "$preserve" ]; then cp -p "$src" "$dest"; else cp "$src" "$dest"; fi
  index=$((index + 1))
done
"""
SHIMS = {"rsync": RSYNC_SHIM}


@dataclass(frozen=True)
class ImageProbe:
    """What one short container found in an image."""

    image: str
    image_id: str
    platform: str  # the image config's os/architecture
    tools: tuple[tuple[str, str], ...]  # (name, path or "")
    path: str  # the image's PATH
    go_binary: str
    go_version: str  # "1.24.11", "" when no Go ran
    go_env: tuple[tuple[str, str], ...]  # GOROOT, GOPATH, GOOS, GOARCH

    def has(self, tool: str) -> bool:
        return bool(dict(self.tools).get(tool))

    def env(self, name: str) -> str:
        return dict(self.go_env).get(name, "")

    def missing(self) -> tuple[str, ...]:
        return tuple(name for name, where in self.tools if not where)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tools"] = dict(self.tools)
        data["go_env"] = dict(self.go_env)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageProbe:
        return cls(
            image=str(data["image"]),
            image_id=str(data["image_id"]),
            platform=str(data["platform"]),
            tools=tuple((str(k), str(v)) for k, v in dict(data["tools"]).items()),
            path=str(data["path"]),
            go_binary=str(data["go_binary"]),
            go_version=str(data["go_version"]),
            go_env=tuple((str(k), str(v)) for k, v in dict(data["go_env"]).items()),
        )

    def summary(self) -> str:
        """One line for the preamble: Go, its layout, and which tools are missing."""
        go = f"Go {self.go_version} ({self.go_binary})" if self.go_version else "no Go"
        layout = f"GOROOT={self.env('GOROOT') or '?'} GOPATH={self.env('GOPATH') or '?'}"
        missing = ", ".join(self.missing()) or "nothing"
        return f"{self.platform}, {go}, {layout}; lacks {missing}"


def parse_probe(image: str, image_id: str, platform: str, output: str) -> ImageProbe:
    """The probe script's output -> ImageProbe (pure)."""
    tools: dict[str, str] = dict.fromkeys(PROBED_TOOLS, "")
    env: dict[str, str] = {}
    path = go_binary = go_version = ""
    for line in output.splitlines():
        key, _, rest = line.partition(" ")
        if key == "tool":
            name, _, where = rest.partition(" ")
            if name in tools:
                tools[name] = "" if where.strip() in ("", "-") else where.strip()
        elif key == "path":
            path = rest.strip()
        elif key == "gobin":
            go_binary = "" if rest.strip() == "-" else rest.strip()
        elif key == "goversion":
            match = re.search(r"go version go(\d+\.\d+(?:\.\d+)?)", line)
            go_version = match.group(1) if match else ""
        elif key == "goenv":
            name, _, value = rest.partition(" ")
            env[name] = value.strip()
    return ImageProbe(
        image,
        image_id,
        platform,
        tuple(tools.items()),
        path,
        go_binary,
        go_version,
        tuple(sorted(env.items())),
    )


@dataclass(frozen=True)
class Toolbox:
    """What the build adds to the image: helpers on PATH, and the PATH that finds them."""

    supplied: tuple[str, ...]  # human text, e.g. "rsync (longcert helper: cp -p)"
    shims: tuple[str, ...]  # names of SHIMS to write into the meta dir
    path: str  # PATH for the build, "" to keep the image's

    @property
    def environment(self) -> dict[str, str]:
        return {"PATH": self.path} if self.path else {}


def assess(probe: ImageProbe, *, engine_platform: str, floor: str | None = None) -> Toolbox:
    """Toolbox for ``probe``'s image, or ImageError naming the image and all it lacks."""
    lacks = [
        f"{tool} (upstream's hack scripts need it)"
        for tool in REQUIRED_TOOLS
        if not probe.has(tool)
    ]
    if probe.platform != engine_platform:
        lacks.append(f"an image for {engine_platform} (it is {probe.platform})")
    if not probe.go_version:
        lacks.append("a Go toolchain that runs (none on PATH or in /usr/local/go)")
    elif probe.env("GOOS") not in ("", "linux"):
        lacks.append(f"a Go for linux (its Go is for {probe.env('GOOS')})")
    elif floor and go_key(probe.go_version) < go_key(floor):
        lacks.append(f"Go {floor} or newer, which go.mod asks for (it has Go {probe.go_version})")
    if lacks:
        raise ImageError(
            f"builder image {probe.image} cannot build kubeadm: it lacks {'; '.join(lacks)}",
            "use an image with them, or make one with `longcert builder-image`",
        )
    supplied: list[str] = []
    shims: list[str] = []
    extra: list[str] = []
    if not probe.has("rsync"):
        if not probe.has("cp"):
            raise ImageError(f"builder image {probe.image} lacks rsync and cp")
        supplied.append("rsync (longcert helper: `rsync -pc FILE DIR` as a copy)")
        shims.append("rsync")
        extra.append(TOOLS_DIR)
    go_dir = os.path.dirname(probe.go_binary)
    image_path = probe.path or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    if go_dir and go_dir not in image_path.split(":"):
        supplied.append(f"{go_dir} on PATH (the image's Go is not on its PATH)")
        extra.insert(0, go_dir)
    path = ":".join([image_path, *extra]) if extra else ""
    return Toolbox(tuple(supplied), tuple(shims), path)


def write_shims(toolbox: Toolbox, meta_dir: Path) -> None:
    """Write the toolbox's helpers into ``meta_dir/tools`` (mounted read-only at TOOLS_DIR)."""
    tools = meta_dir / "tools"
    tools.mkdir(parents=True, exist_ok=True)
    for name in toolbox.shims:
        (tools / name).write_text(SHIMS[name])
        (tools / name).chmod(0o755)


# --- probing (needs the engine) -----------------------------------------------------------


def _cache_file(cache_dir: Path, image_id: str) -> Path:
    return cache_dir / "probes" / f"{image_id.removeprefix('sha256:')[:64]}.json"


def probe(
    client: Any, image: str, info: container.ImageInfo, cache_dir: Path, engine_platform: str
) -> ImageProbe:
    """Probe ``image`` (present: ``info`` is its inspection), once per image id. An image of
    another platform is refused without running anything in it."""
    image_id, platform = info.id, info.platform
    cached = _cache_file(cache_dir, image_id)
    try:
        found = ImageProbe.from_dict(json.loads(cached.read_text()))
        if found.image_id == image_id:
            return found if found.image == image else _renamed(found, image)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not probed yet, or a damaged record: probe again
    if platform != engine_platform:
        raise ImageError(
            f"builder image {image} cannot build kubeadm: it is an image for {platform}, and "
            f"this engine runs {engine_platform}",
            f"use the {engine_platform} variant of the image (docker pull --platform "
            f"{engine_platform} ...)",
        )
    code, output = container.run_once(
        client, image_id, ["/bin/sh", "-c", PROBE_SCRIPT], labels={"org.longcert.purpose": "probe"}
    )
    if code == 127 and "tool " not in output:
        raise ImageError(
            f"builder image {image} cannot build kubeadm: it lacks /bin/sh ({output.strip()[:120]})"
        )
    if code != 0:
        tail = " / ".join(output.strip().splitlines()[-2:])
        raise ImageError(f"probing builder image {image} failed (exit {code}): {tail}")
    result = parse_probe(image, image_id, platform, output)
    cached.parent.mkdir(parents=True, exist_ok=True)
    runs.write_atomic(cached, json.dumps(result.to_dict(), indent=2))
    return result


def _renamed(found: ImageProbe, image: str) -> ImageProbe:
    data = found.to_dict()
    data["image"] = image
    return ImageProbe.from_dict(data)


# --- choosing (needs the engine) ----------------------------------------------------------


@dataclass(frozen=True)
class ImageChoice:
    """The image that builds the tree, its Go, and why it was chosen."""

    image: str
    image_id: str
    go: GoVersion  # the Go that builds (the image's own, as probed)
    wanted: GoVersion  # the Go the tree (or --go-version) named
    chosen_by: str  # one line: which rule chose this image
    probe: ImageProbe
    digests: tuple[str, ...] = ()  # repository@sha256:... of the image in registries
    # Where `longcert builder-image` took the Go from: (file or URL, its sha256); () otherwise.
    toolchain: tuple[str, ...] = ()
    # Its origin labels (gotrace.LABELS: kind, tree digest, the official archive traced to).
    toolchain_origin: tuple[tuple[str, str], ...] = ()


def template_pattern(template: str) -> re.Pattern[str] | None:
    """``golang:{go_version}`` -> a regex whose group 1 is the Go version; None without one."""
    if "{go_version}" not in template:
        return None
    parts = [re.escape(part) for part in template.split("{go_version}")]
    return re.compile(r"(\d+\.\d+(?:\.\d+)?)".join(parts))


@dataclass(frozen=True)
class StandIns:
    """Local images that may build a tree whose own Go image is missing, nearest first, and
    one line per local image of the template that may not, with why."""

    allowed: tuple[tuple[str, str], ...]  # (image, go)
    # one line per reason: "golang:1.24.11, golang:1.27.1: newer than v1.22's ceiling ..."
    passed_over: tuple[str, ...]


def stand_ins(
    names: list[str], template: str, wanted: str, policy: GoPolicy, floor: str | None,
    breaks: Callable[[str], list[str]] | None = None,
) -> StandIns:
    """The local images (``names``) the template names that may stand in for ``wanted``:
    allowed by the minor's rule and ceiling and by ``breaks`` (go -> the tree's vendored code
    known to crash on it). Nearest first: the same Go minor, newest patch first; then the next
    minors up, each newest patch first (pure)."""
    pattern = template_pattern(template)
    if pattern is None:
        return StandIns((), ())
    allowed: list[tuple[str, str]] = []
    passed_over: list[tuple[str, str, str]] = []
    for name in names:
        match = pattern.fullmatch(name)
        if not match or not is_go_version(match.group(1)) or match.group(1) == wanted:
            continue
        go = match.group(1)
        # the tree's own code crashing on it says more than the rule or the ceiling
        why = next(iter(breaks(go) if breaks else []), "") or policy.refusal(go, wanted, floor)
        if why:
            passed_over.append((name, go, why))
        else:
            allowed.append((name, go))
    wanted_minor = go_minor(wanted)

    def nearest(candidate: tuple[str, str]) -> tuple[int, tuple[int, int, int], int]:
        # same minor first, then minors in ascending order; newest patch first within a minor
        go = candidate[1]
        return (0 if go_minor(go) == wanted_minor else 1, go_key(go_minor(go)), -go_key(go)[2])

    allowed.sort(key=nearest)
    passed_over.sort(key=lambda c: go_key(c[1]))
    by_reason: dict[str, list[str]] = {}  # images passed over for the same reason: one line
    for name, _, why in passed_over:
        by_reason.setdefault(why, []).append(name)
    return StandIns(tuple(allowed), tuple(f"{', '.join(names)}: {why}"
                                          for why, names in by_reason.items()))


def builder_image_command(template: str, go: str) -> str:
    """The exact command that makes the image ``template`` names for ``go``."""
    image = template.format(go_version=go)
    tag = "" if image == f"golang:{go}" else f" --tag {image}"
    return f"longcert builder-image --go-version {go}{tag}"


def _present_or_pulled(
    client: Any, image: str, registry_mirror: str, progress: LineFn | None
) -> str | None:
    """The image's id after using or pulling it; None when it is neither here nor pullable."""
    try:
        return container.ensure_image(client, image, registry_mirror, progress)
    except ImageError:
        return None


def choose(
    client: Any,
    *,
    wanted: GoVersion,
    policy: GoPolicy | None,
    template: str,
    registry_mirror: str,
    cache_dir: Path,
    engine_platform: str,
    floor: str | None = None,
    progress: LineFn | None = None,
    breaks: Callable[[str], list[str]] | None = None,
) -> ImageChoice:
    """The image for ``wanted``: present, pulled, or (``policy`` given, i.e. --go-version
    auto) the nearest other local image the minor's rule and ceiling allow and ``breaks``
    (go -> the tree's vendored code known to crash on it) does not rule out. Probed and
    assessed; ImageError when none can build."""
    image = template.format(go_version=wanted.version)
    named_go = wanted.version  # the Go the image's name promises
    image_id = _present_or_pulled(client, image, registry_mirror, progress)
    if "{go_version}" not in template:
        chosen_by = f"the image --image names ({template})"
        policy = None  # a fixed image has no stand-ins
    elif wanted.source == "setting go_version":
        chosen_by = f"Go {wanted.version} asked with --go-version"
    else:
        chosen_by = f"Go {wanted.version} from the tree's {wanted.source}"
    passed_over: tuple[str, ...] = ()
    if image_id is None and policy is not None:
        names = container.local_image_names(client)
        others = stand_ins(names, template, wanted.version, policy, floor, breaks)
        passed_over = others.passed_over
        for candidate, other_go in others.allowed[:1]:
            image, image_id = candidate, container.image_id(client, candidate)
            named_go = other_go
            chosen_by = (
                f"rule '{policy.rule}' of v{policy.minor} ({GO_RULES[policy.rule]}): "
                f"{template.format(go_version=wanted.version)} for the tree's Go "
                f"{wanted.version} is neither present nor pullable, so the nearest allowed, "
                f"Go {other_go}" + (f"; passed over {'; '.join(passed_over)}"
                                    if passed_over else "")
            )
    if image_id is None:
        where = f" (nor from {registry_mirror})" if registry_mirror else ""
        rule = f"; rule '{policy.rule}': {GO_RULES[policy.rule]}" if policy else ""
        if passed_over:
            rule += f"; passed over {'; '.join(passed_over)}"
        hint = (
            f"make it with `{builder_image_command(template, wanted.version)}`"
            if wanted.version
            else "pull or build it, or pass another --image"
        )
        raise ImageError(
            f"builder image {image} for Go {wanted.version or '?'} ({wanted.source}) is not "
            f"present and cannot be pulled{where}, and no local image may stand in for it{rule}",
            hint,
        )
    info = container.inspect_image(client, image_id)
    found = probe(client, image, info, cache_dir, engine_platform)
    go = GoVersion(found.go_version or wanted.version, wanted.source)
    if found.go_version and found.go_version != named_go:
        chosen_by += f"; the image's Go is {found.go_version}"
    if found.go_version and found.go_version != wanted.version:
        go = GoVersion(found.go_version, f"probed in {image}")
    toolchain = tuple(
        info.labels[key]
        for key in ("org.longcert.go-source", "org.longcert.go-sha256")
        if key in info.labels
    )
    origin = tuple((key, info.labels[key]) for key in gotrace.LABELS if key in info.labels)
    return ImageChoice(
        image, image_id, go, wanted, chosen_by, found, info.digests, toolchain, origin
    )

