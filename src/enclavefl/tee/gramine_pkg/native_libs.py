"""The host libraries the enclave must trust: the ELF closure of the interpreter and its extension modules.

    libs = plan_native_libraries(interpreter="/usr/bin/python3.11", extensions=[...], library_dirs=[...])

Only what the interpreter binary, the standard library's extension modules and the trusted site-packages'
extension modules link (transitively) is trusted, not all of /usr/lib: an unrelated package upgrade on the
build host no longer changes MRENCLAVE, and a data owner can list what is measured. The check is on what the
binary links, not on sysconfig's Py_ENABLE_SHARED (true for Debian's python3.11, which links no libpython).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from enclavefl.errors import UnresolvedLibrary
from enclavefl.tee.gramine_pkg.elf import is_elf, read_elf_dynamic, resolve_libraries

# Loaded with dlopen, so in no DT_NEEDED list: glibc opens libgcc_s for stack unwinding when a thread exits
# through pthread_exit or is cancelled (CPython's daemon threads at interpreter exit), and Gramine's runtime
# does not ship it.
DLOPENED_LIBRARIES: Final = ("libgcc_s.so.1",)


def plan_native_libraries(
    *, interpreter: str, extensions: Iterable[str], library_dirs: Sequence[str], bundled_dirs: Sequence[str] = ()
) -> tuple[str, ...]:
    """Sorted host library paths (under `library_dirs`) that `interpreter` and `extensions` load.

    `bundled_dirs` hold libraries trusted another way (a wheel's `numpy.libs/` inside site-packages). A library
    found anywhere else (a pyenv interpreter's libpython under its own prefix) raises UnresolvedLibrary: the
    enclave does not mount it.
    """
    info = read_elf_dynamic(interpreter)
    needed = info.needed
    shared = [name for name in needed if name.startswith("libpython")]
    if shared:
        # Inside Gramine, LD_LIBRARY_PATH (the library dirs) comes before the binary's RUNPATH: a pyenv-style
        # interpreter would load whatever libpython the distribution ships there, another build than its own.
        raise UnresolvedLibrary(
            f"the interpreter {interpreter} links {shared[0]} (RUNPATH {list(info.runpath) or 'none'}): the enclave "
            "needs an interpreter with libpython linked in, like the distribution's python3 (Debian's "
            "/usr/bin/python3.11 links no libpython); a shared libpython would be looked up in "
            f"{list(library_dirs)} first"
        )
    resolved = resolve_libraries([interpreter, *extensions], search_dirs=list(library_dirs))
    for name in DLOPENED_LIBRARIES:
        if name not in resolved:
            found = next((os.path.join(d, name) for d in library_dirs if os.path.isfile(os.path.join(d, name))), None)
            if found is None:
                raise UnresolvedLibrary(f"{name} (dlopened by glibc) is in none of {list(library_dirs)}")
            resolved[name] = os.path.normpath(found)
            resolved.update(resolve_libraries([found], search_dirs=list(library_dirs)))
    mounted = tuple(os.path.join(os.path.normpath(d), "") for d in (*library_dirs, *bundled_dirs))
    outside = {name: path for name, path in resolved.items() if not path.startswith(mounted)}
    if outside:
        name, path = sorted(outside.items())[0]
        who = "the interpreter" if name in needed else "an extension module"
        hint = (
            " (a Python built with --enable-shared, e.g. pyenv's: use the distribution's python3, which links no "
            "libpython)"
            if name.startswith("libpython")
            else ""
        )
        raise UnresolvedLibrary(
            f"{who} links {name} from {path}, outside the enclave's library directories {list(library_dirs)}{hint}"
        )
    return tuple(sorted(path for path in resolved.values() if not path.startswith(mounted[len(library_dirs) :])))


def elf_files_under(roots: Iterable[str]) -> list[str]:
    """Every ELF shared object (`*.so`, `*.so.N`) under `roots` (files or directories), sorted."""
    found: list[str] = []
    for root in roots:
        base = Path(root)
        candidates = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        found.extend(str(p) for p in candidates if (p.suffix == ".so" or ".so." in p.name) and is_elf(p))
    return sorted(set(found))
