"""What an ELF file links: its dynamic section (DT_NEEDED, DT_RUNPATH, DT_RPATH) read with `struct`.

    info = read_elf_dynamic("/usr/bin/python3.11")        # needed=('libm.so.6', 'libz.so.1', ...), no libpython
    libs = resolve_libraries(["/usr/bin/python3.11"], search_dirs=["/lib/x86_64-linux-gnu"])

The enclave build trusts the libraries the interpreter and the aggregator's extension modules actually load,
not a sysconfig flag (Debian's python3.11 says Py_ENABLE_SHARED=1 yet links no libpython) and not the whole
of /usr/lib. This is the loader's own view: program headers (PT_DYNAMIC, PT_LOAD), not section headers, which
a stripped file may lack. Only 64-bit little-endian ELF is read (x86-64 is the only SGX architecture).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from enclavefl.errors import ElfFormatError, UnresolvedLibrary

_ELF_MAGIC: Final = b"\x7fELF"
_ELFCLASS64: Final = 2
_ELFDATA2LSB: Final = 1
_PT_LOAD: Final = 1
_PT_DYNAMIC: Final = 2
_PT_INTERP: Final = 3
_DT_NULL: Final = 0
_DT_NEEDED: Final = 1
_DT_STRTAB: Final = 5
_DT_STRSZ: Final = 10
_DT_SONAME: Final = 14
_DT_RPATH: Final = 15
_DT_RUNPATH: Final = 29
_EHDR: Final = struct.Struct("<16sHHIQQQIHHHHHH")  # Elf64_Ehdr
_PHDR: Final = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr
_DYN: Final = struct.Struct("<qQ")  # Elf64_Dyn
_MAX_FILE: Final = 1 << 31
# Provided inside the enclave by Gramine's runtime directory (its patched glibc, mounted at /lib; the list of
# subprojects/packagefiles/glibc-2.40/meson.build in Gramine 1.8/1.9): the host's copies are never loaded, so
# they are neither resolved nor trusted. libcrypt is not among them (libxcrypt on Debian): it is resolved.
GRAMINE_RUNTIME_LIBRARIES: Final = frozenset(
    {
        "ld-linux-x86-64.so.2",
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "libpthread.so.0",
        "librt.so.1",
        "libresolv.so.2",
        "libutil.so.1",
        "libnsl.so.1",
        "libanl.so.1",
        "libmvec.so.1",
        "libthread_db.so.1",
        "libnss_compat.so.2",
        "libnss_db.so.2",
        "libnss_dns.so.2",
        "libnss_files.so.2",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ElfDynamic:
    """The loader-relevant facts of one ELF file."""

    path: str
    interpreter: str | None  # PT_INTERP: executables only
    soname: str | None
    needed: tuple[str, ...]
    runpath: tuple[str, ...]  # DT_RUNPATH entries, $ORIGIN expanded
    rpath: tuple[str, ...]  # DT_RPATH (used only when there is no DT_RUNPATH)


def is_elf(path: str | Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == _ELF_MAGIC
    except OSError:
        return False


def read_elf_dynamic(path: str | Path) -> ElfDynamic:
    """Parse `path`'s program headers and dynamic section; raises ElfFormatError for anything else."""
    data = _read(path)
    if len(data) < _EHDR.size or data[:4] != _ELF_MAGIC:
        raise ElfFormatError(f"{path}: not an ELF file")
    ident = data[:16]
    if ident[4] != _ELFCLASS64 or ident[5] != _ELFDATA2LSB:
        raise ElfFormatError(f"{path}: only 64-bit little-endian ELF is supported (x86-64)")
    header = _EHDR.unpack_from(data)
    phoff, phentsize, phnum = header[5], header[9], header[10]
    if phentsize != _PHDR.size or phoff + phnum * phentsize > len(data):
        raise ElfFormatError(f"{path}: program header table out of bounds")
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dynamic: tuple[int, int] | None = None
    interpreter: str | None = None
    for index in range(phnum):
        p_type, _flags, offset, vaddr, _paddr, filesz, _memsz, _align = _PHDR.unpack_from(
            data, phoff + index * phentsize
        )
        if offset + filesz > len(data):
            raise ElfFormatError(f"{path}: segment {index} extends past the end of the file")
        if p_type == _PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif p_type == _PT_DYNAMIC:
            dynamic = (offset, filesz)
        elif p_type == _PT_INTERP:
            interpreter = data[offset : offset + filesz].split(b"\0", 1)[0].decode("utf-8", "replace")
    if dynamic is None:  # statically linked: needs nothing
        return ElfDynamic(path=str(path), interpreter=interpreter, soname=None, needed=(), runpath=(), rpath=())
    entries = _dynamic_entries(data, dynamic, path)
    strtab = _file_offset(loads, _single(entries, _DT_STRTAB, path), path)
    strsz = _single(entries, _DT_STRSZ, path)
    if strtab + strsz > len(data):
        raise ElfFormatError(f"{path}: dynamic string table out of bounds")
    table = data[strtab : strtab + strsz]

    def text(offset: int) -> str:
        if offset >= len(table):
            raise ElfFormatError(f"{path}: dynamic string offset {offset} out of bounds")
        return table[offset:].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    origin = os.path.dirname(os.path.abspath(path))

    def search_path(tag: int) -> tuple[str, ...]:
        return tuple(
            entry.replace("$ORIGIN", origin).replace("${ORIGIN}", origin)
            for value in entries.get(tag, [])
            for entry in text(value).split(":")
            if entry
        )

    sonames = entries.get(_DT_SONAME, [])
    return ElfDynamic(
        path=str(path),
        interpreter=interpreter,
        soname=text(sonames[0]) if sonames else None,
        needed=tuple(text(value) for value in entries.get(_DT_NEEDED, [])),
        runpath=search_path(_DT_RUNPATH),
        rpath=search_path(_DT_RPATH),
    )


def resolve_libraries(
    roots: Iterable[str | Path],
    *,
    search_dirs: Sequence[str],
    provided: frozenset[str] = GRAMINE_RUNTIME_LIBRARIES,
) -> dict[str, str]:
    """The transitive DT_NEEDED closure of `roots`: {library name: resolved absolute path}.

    Resolution follows glibc's order: DT_RPATH of the object and of the objects that loaded it (ignored when the
    object has DT_RUNPATH), then `search_dirs` (the manifest's LD_LIBRARY_PATH), then DT_RUNPATH. Names in
    `provided` come from Gramine's runtime and are skipped. Raises UnresolvedLibrary naming the file that needs
    a library no directory holds.
    """
    resolved: dict[str, str] = {}
    missing: dict[str, tuple[str, list[str]]] = {}  # name -> (who needs it, where we looked)
    pending: list[tuple[str, tuple[str, ...]]] = [(str(root), ()) for root in roots]  # (file, loaders' RPATHs)
    seen: set[str] = set()
    while pending:
        current, inherited = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        info = read_elf_dynamic(current)
        rpaths = () if info.runpath else (*info.rpath, *inherited)
        dirs = [*rpaths, *search_dirs, *info.runpath]
        for name in info.needed:
            if name in provided or name in resolved:
                continue
            found = next((os.path.join(d, name) for d in dirs if os.path.isfile(os.path.join(d, name))), None)
            if found is None:
                missing.setdefault(name, (current, dirs))
                continue
            resolved[name] = os.path.normpath(found)
            pending.append((found, rpaths))
    # The loader reuses a library already loaded under the same name (auditwheel's bundled libgfortran finds
    # its libquadmath because the extension module loaded it first), so a name resolved anywhere counts.
    for name, (needer, dirs) in missing.items():
        if name not in resolved:
            raise UnresolvedLibrary(
                f"{needer} needs {name}, found in none of {dirs}: install it, or use an interpreter that does "
                "not need it"
            )
    return resolved


def _read(path: str | Path) -> bytes:
    try:
        size = os.path.getsize(path)
        if size > _MAX_FILE:
            raise ElfFormatError(f"{path}: {size} bytes is too large for an ELF we would load")
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ElfFormatError(f"{path}: {exc}") from exc


def _dynamic_entries(data: bytes, dynamic: tuple[int, int], path: str | Path) -> dict[int, list[int]]:
    offset, size = dynamic
    entries: dict[int, list[int]] = {}
    for position in range(offset, offset + size - _DYN.size + 1, _DYN.size):
        tag, value = _DYN.unpack_from(data, position)
        if tag == _DT_NULL:
            return entries
        entries.setdefault(tag, []).append(value)
    raise ElfFormatError(f"{path}: dynamic section has no DT_NULL terminator")


def _single(entries: Mapping[int, list[int]], tag: int, path: str | Path) -> int:
    values = entries.get(tag, [])
    if len(values) != 1:
        raise ElfFormatError(f"{path}: expected one dynamic entry of tag {tag}, found {len(values)}")
    return values[0]


def _file_offset(loads: Sequence[tuple[int, int, int]], address: int, path: str | Path) -> int:
    for vaddr, offset, filesz in loads:
        if vaddr <= address < vaddr + filesz:
            return address - vaddr + offset
    raise ElfFormatError(f"{path}: address {address:#x} lies in no loaded segment")
