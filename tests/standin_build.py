"""A stand-in build directory, laid out as `invoke build` writes it, for publish tests.

The binaries are a few hundred KiB of deterministic bytes (distinct per platform) behind a
minimal executable header for their platform (publish checks it), so publishing can be tested
without Docker; the integration tests also publish a real build.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from longcert.package import build_id, published_names, sums_text

# Machine numbers as the ELF, PE and Mach-O specifications give them (written out here, not
# taken from longcert.verify, so the tests check that table instead of repeating it).
ELF_MACHINE = {"amd64": 62, "arm64": 183, "arm": 40, "386": 3, "ppc64le": 21, "s390x": 22}
PE_MACHINE = {"amd64": 0x8664, "386": 0x14C, "arm64": 0xAA64}
MACHO_CPU = {"amd64": 0x01000007, "arm64": 0x0100000C}


def elf_header(goarch: str, *, elf_class: int | None = None, osabi: int = 0, e_type: int = 2,
               loadable: bool = True) -> bytes:
    """An ELF header as Go's linker writes one for linux/``goarch`` (class and byte order of
    the machine, ELFOSABI_NONE, ET_EXEC) with one PT_LOAD program header (executable unless
    ``loadable`` is False); the keywords make the wrong ones the tests refuse."""
    bits64 = (elf_class or (1 if goarch in ("arm", "386") else 2)) == 2
    order = "big" if goarch == "s390x" else "little"

    def h(value: int, size: int) -> bytes:
        return value.to_bytes(size, order)

    ident = b"\x7fELF" + bytes([2 if bits64 else 1, 2 if order == "big" else 1, 1, osabi])
    ident += bytes(8)
    machine, flags = ELF_MACHINE[goarch], 5 if loadable else 4  # PF_R | PF_X, or PF_R only
    if bits64:
        header = (ident + h(e_type, 2) + h(machine, 2) + h(1, 4) + h(0x401000, 8) + h(64, 8)
                  + h(0, 8) + h(0, 4) + h(64, 2) + h(56, 2) + h(1, 2) + h(64, 2) + h(0, 4))
        phdr = (h(1, 4) + h(flags, 4) + h(0, 8) + h(0x400000, 8) + h(0x400000, 8)
                + h(1 << 20, 8) + h(1 << 20, 8) + h(0x1000, 8))
    else:
        header = (ident + h(e_type, 2) + h(machine, 2) + h(1, 4) + h(0x8049000, 4) + h(52, 4)
                  + h(0, 4) + h(0, 4) + h(52, 2) + h(32, 2) + h(1, 2) + h(40, 2) + h(0, 4))
        phdr = (h(1, 4) + h(0, 4) + h(0x8048000, 4) + h(0x8048000, 4) + h(1 << 20, 4)
                + h(1 << 20, 4) + h(flags, 4) + h(0x1000, 4))
    return header + phdr


def executable_header(platform: str) -> bytes:
    """The first bytes of a Go binary for ``platform``: an ELF, PE or Mach-O header."""
    goos, goarch = platform.split("/")
    if goos == "windows":
        dos = b"MZ" + bytes(58) + (64).to_bytes(4, "little")  # e_lfanew: the PE header at 64
        return dos + b"PE\0\0" + PE_MACHINE[goarch].to_bytes(2, "little")
    if goos == "darwin":
        return b"\xcf\xfa\xed\xfe" + MACHO_CPU[goarch].to_bytes(4, "little")
    return elf_header(goarch)


def _binary(platform: str, size: int, salt: str) -> bytes:
    seed = hashlib.sha256(f"{platform}/{salt}".encode()).digest()
    block = seed * (4096 // len(seed))
    data = (executable_header(platform) + block * (size // len(block) + 1))[:size]
    return data


def make_build(
    builds_dir: Path,
    tag: str = "v1.33.7",
    years: int = 10,
    ca_years: int = 10,
    platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
    *,
    passed: bool = True,
    size: int = 300_000,
    salt: str = "",
    inputs: dict[str, object] | None = None,
    with_reports: bool = False,
) -> Path:
    """Write builds_dir/<build-id>/ with binaries, SHA256SUMS, patch.diff, verify.json, SBOMs,
    provenance.json and manifest.json; ``with_reports``: also report.html and REPORT.md and the
    counts (checks, scenarios) builds write since they have them (without: an older build)."""
    out = builds_dir / build_id(tag, years, ca_years, platforms=tuple(platforms))
    out.mkdir(parents=True)
    artifacts = []
    for platform in platforms:
        goos, goarch = platform.split("/")
        name = f"kubeadm-{goos}-{goarch}" + (".exe" if goos == "windows" else "")
        data = _binary(platform, size, salt + tag)
        (out / name).write_bytes(data)
        (out / name).chmod(0o755)
        digest = hashlib.sha256(data).hexdigest()
        artifacts.append({"platform": platform, "file": name, "size": len(data), "sha256": digest})
    diff = (
        "--- a/cmd/kubeadm/app/constants/constants.go\n"
        "+++ b/cmd/kubeadm/app/constants/constants.go\n"
        "@@ -1 +1 @@\n"
        "-\tCertificateValidity = time.Hour * 24 * 365\n"
        f"+\tCertificateValidity = time.Hour * 24 * 365 * {years}\n"
    )
    (out / "patch.diff").write_text(diff)
    reports = [
        {"tag": tag, "platform": p, "leaf_years": years, "ca_years": ca_years, "passed": passed,
         "status": "verified" if passed else "failed", "checks": [], "problems": []}
        for p in platforms
    ]
    (out / "verify.json").write_text(json.dumps({"passed": passed, "platforms": reports}) + "\n")
    (out / "build.log").write_text("stand-in build\n")
    manifest = {
        "tool": {"name": "longcert", "version": "0.1.0"},
        "inputs": inputs,
        "created": "2026-01-02T03:04:05Z",
        "kubernetes": {"tag": tag, "commit": "0123456789abcdef" * 2 + "01234567",
                       "remote": "file:///standin/kubernetes"},
        "validity": {"leaf_years": years, "ca_years": ca_years, "leaf_hours": years * 8760,
                     "ca_hours": ca_years * 8760},
        "patch": {"set": "e4-validity-period",
                  "diff_sha256": hashlib.sha256(diff.encode()).hexdigest(),
                  "files": ["cmd/kubeadm/app/constants/constants.go"]},
        "go": {"version": "1.24.11", "source": ".go-version"},
        "image": {"name": "golang:1.24.11", "id": "sha256:" + "ab" * 32},
        "platforms": list(platforms),
        "artifacts": artifacts,
        "verification": {
            "passed": passed,
            "platforms": {
                p: {"status": "verified" if passed else "failed", "executed_with": "native",
                    "header": p, "reported_version": tag, "certificates_checked": 22,
                    "renewals_checked": 17}
                for p in platforms
            },
        },
    }
    manifest["attestations"] = _attestations(out, artifacts)
    evidence = ["patch.diff", "verify.json", "build.log"]
    if with_reports:
        (out / "report.html").write_text("<!DOCTYPE html><title>passed</title>\n")
        (out / "REPORT.md").write_text("# passed\n")
        manifest["reports"] = [
            {"file": name, "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest()}
            for name in ("report.html", "REPORT.md")]
        evidence += ["report.html", "REPORT.md"]
        for entry in manifest["verification"]["platforms"].values():  # type: ignore[index]
            entry.update({"checks": 52, "scenarios": 4})
    manifest["evidence"] = {name: hashlib.sha256((out / name).read_bytes()).hexdigest()
                            for name in evidence}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    # every published file, manifest.json too, as `invoke build` writes it
    (out / "SHA256SUMS").write_text(sums_text(out, published_names(out)))
    return out


def _attestations(out: Path, artifacts: list[dict[str, object]]) -> dict[str, object]:
    """A minimal SPDX document per binary and an in-toto statement naming the binaries."""
    sboms = []
    for artifact in artifacts:
        name = f"{artifact['file']}.spdx.json"
        (out / name).write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": artifact["file"]}))
        sboms.append({"platform": artifact["platform"], "file": name,
                      "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest()})
    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "predicateType": "https://slsa.dev/provenance/v1", "predicate": {},
                 "subject": [{"name": a["file"], "digest": {"sha256": a["sha256"]}}
                             for a in artifacts]}
    (out / "provenance.json").write_text(json.dumps(statement, indent=2) + "\n")  # as builds do
    return {"sbom": sboms, "provenance": {
        "file": "provenance.json",
        "sha256": hashlib.sha256((out / "provenance.json").read_bytes()).hexdigest()}}
