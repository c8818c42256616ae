"""What an executable's first bytes say: its platform (GOOS/GOARCH), or why it is not a
kubeadm executable at all (:func:`binary_platform`, :func:`file_platform` for a file). No
engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

HEAD_BYTES = 4096  # what is read of a file to tell its format and platform, never the whole

_ELF_MACHINES = {62: "amd64", 183: "arm64", 40: "arm", 3: "386", 21: "ppc64le", 22: "s390x"}
_PE_MACHINES = {0x8664: "amd64", 0x14C: "386", 0xAA64: "arm64"}
_MACHO_CPUS = {0x01000007: "amd64", 0x0100000C: "arm64"}


def file_platform(path: Path) -> tuple[str, str]:
    """:func:`binary_platform` of the file at ``path``, from its first :data:`HEAD_BYTES`."""
    with path.open("rb") as handle:
        return binary_platform(handle.read(HEAD_BYTES))


def binary_platform(data: bytes) -> tuple[str, str]:
    """(GOOS/GOARCH, description) from an executable's first bytes; ("", why) if unknown."""
    if data[:4] == b"\x7fELF":
        return _elf_platform(data)
    if data[:2] == b"MZ" and len(data) >= 64:
        offset = int.from_bytes(data[60:64], "little")
        if data[offset : offset + 4] == b"PE\0\0":
            machine = int.from_bytes(data[offset + 4 : offset + 6], "little")
            arch = _PE_MACHINES.get(machine)
            return (f"windows/{arch}", f"PE {arch}") if arch else ("", f"PE machine {machine:#x}")
        return "", "MZ header without a PE signature"
    if data[:4] == b"\xcf\xfa\xed\xfe" and len(data) >= 8:
        cpu = int.from_bytes(data[4:8], "little")
        arch = _MACHO_CPUS.get(cpu)
        return (f"darwin/{arch}", f"Mach-O {arch}") if arch else ("", f"Mach-O cpu {cpu:#x}")
    return "", "not an ELF, PE or Mach-O executable"


# What a Linux executable of each GOARCH is: ELF class (1 = 32-bit, 2 = 64-bit) and byte order
# (1 = little, 2 = big), as Go's linker writes them (cmd/link/internal/ld/elf.go).
_ELF_SHAPE = {"amd64": (2, 1), "arm64": (2, 1), "ppc64le": (2, 1), "s390x": (2, 2),
              "arm": (1, 1), "386": (1, 1)}
_ELF_OSABI_LINUX = (0, 3)  # ELFOSABI_NONE (what Go writes for linux) and ELFOSABI_GNU
_ELF_EXECUTABLE_TYPES = (2, 3)  # ET_EXEC, ET_DYN (a PIE)
_ELF_TYPES = {0: "ET_NONE", 1: "ET_REL (an object file)", 4: "ET_CORE (a core dump)"}


def _elf_platform(data: bytes) -> tuple[str, str]:
    """An ELF header checked as a Linux executable of a known machine: class and byte order
    of that machine, a Linux OS ABI, an executable type, and a program header table in the
    read bytes with a loadable, executable segment. Anything else is not kubeadm (issue 20:
    an ELF32 header for amd64, a FreeBSD ABI, an ET_REL object, or a 64-byte fake header
    followed by a shell script were all taken for linux/amd64)."""
    if len(data) < 52:
        return "", "ELF header cut short"
    elf_class, order_byte, version, osabi = data[4], data[5], data[6], data[7]
    if order_byte not in (1, 2) or elf_class not in (1, 2) or version != 1:
        return "", "ELF header with an invalid class, byte order or version"
    order: Literal["little", "big"] = "little" if order_byte == 1 else "big"

    def field(start: int, size: int) -> int:
        return int.from_bytes(data[start : start + size], order)

    machine = field(18, 2)
    arch = _ELF_MACHINES.get(machine)
    if not arch:
        return "", f"ELF machine {machine}"
    bits = "64" if elf_class == 2 else "32"
    if (elf_class, order_byte) != _ELF_SHAPE[arch]:
        return "", f"ELF{bits} {order}-endian header for {arch}, which is neither"
    if osabi not in _ELF_OSABI_LINUX:
        return "", f"ELF {arch} for OS ABI {osabi} (not Linux; 9 is FreeBSD)"
    kind = field(16, 2)
    if kind not in _ELF_EXECUTABLE_TYPES:
        return "", f"ELF {arch} of type {_ELF_TYPES.get(kind, kind)}, not an executable"
    if elf_class == 2:
        phoff, phentsize, phnum, entry_size = field(32, 8), field(54, 2), field(56, 2), 56
    else:
        phoff, phentsize, phnum, entry_size = field(28, 4), field(42, 2), field(44, 2), 32
    if phnum == 0 or phentsize != entry_size or phoff + phnum * phentsize > len(data):
        return "", f"ELF {arch} without a program header table in its first {len(data)} bytes"
    flags_at = 4 if elf_class == 2 else 24  # p_flags: after p_type in ELF64, late in ELF32
    loadable = any(
        field(phoff + n * phentsize, 4) == 1  # PT_LOAD
        and field(phoff + n * phentsize + flags_at, 4) & 1  # PF_X
        for n in range(phnum)
    )
    if not loadable:
        return "", f"ELF {arch} with no executable segment to load"
    return f"linux/{arch}", f"ELF {arch}"
