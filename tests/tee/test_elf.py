"""The ELF dynamic-section reader and the native-library plan, against real binaries on this machine.

readelf (binutils) is the reference for DT_NEEDED/RUNPATH and ldd for the resolved closure; both are only used
by the tests, the build does not need them.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from enclavefl.errors import ElfFormatError, UnresolvedLibrary
from enclavefl.tee.gramine_pkg.elf import GRAMINE_RUNTIME_LIBRARIES, read_elf_dynamic, resolve_libraries
from enclavefl.tee.gramine_pkg.native_libs import elf_files_under, plan_native_libraries

MULTIARCH = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
LIBRARY_DIRS = [f"/lib/{MULTIARCH}", f"/usr/lib/{MULTIARCH}"]
DEBIAN_PYTHON = next(iter(sorted(glob.glob("/usr/bin/python3.[0-9]*[0-9]"))), None)
VENV_PYTHON = os.path.realpath(sys.executable)
needs_readelf = pytest.mark.skipif(shutil.which("readelf") is None, reason="needs binutils' readelf")
needs_debian_python = pytest.mark.skipif(DEBIAN_PYTHON is None, reason="no /usr/bin/python3.X here")


def readelf_dynamic(path: str) -> tuple[list[str], list[str]]:
    out = subprocess.run(["readelf", "-dW", path], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*?)\]", out)
    runpath = [p for m in re.findall(r"\(RUNPATH\)\s+Library runpath: \[(.*?)\]", out) for p in m.split(":")]
    return needed, runpath


def sample_extension_modules() -> list[str]:
    site = sysconfig.get_paths()["purelib"]
    found = sorted(glob.glob(f"{site}/**/*.so", recursive=True))
    return found[:: max(1, len(found) // 40)]  # ~40 spread over numpy, scipy, grpc, cryptography, torch ...


@needs_readelf
@pytest.mark.parametrize("path", [p for p in (DEBIAN_PYTHON, VENV_PYTHON) if p is not None])
def test_interpreters_needed_and_runpath_match_readelf(path: str) -> None:
    info = read_elf_dynamic(path)

    needed, runpath = readelf_dynamic(path)
    assert list(info.needed) == needed
    assert [p.replace("$ORIGIN", os.path.dirname(path)) for p in runpath] == list(info.runpath)
    assert info.interpreter is not None and info.interpreter.startswith("/lib")


@needs_readelf
def test_extension_modules_match_readelf() -> None:
    modules = sample_extension_modules()
    assert len(modules) >= 10

    for module in modules:
        assert list(read_elf_dynamic(module).needed) == readelf_dynamic(module)[0], module


@needs_debian_python
def test_debian_python_links_no_libpython_although_sysconfig_says_shared() -> None:
    assert DEBIAN_PYTHON is not None
    shared = subprocess.run(
        [DEBIAN_PYTHON, "-c", "import sysconfig; print(sysconfig.get_config_var('Py_ENABLE_SHARED'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    needed = read_elf_dynamic(DEBIAN_PYTHON).needed

    assert shared == "1"  # the flag the old build.sh check refused this interpreter on
    assert not [name for name in needed if name.startswith("libpython")]
    libraries = plan_native_libraries(interpreter=DEBIAN_PYTHON, extensions=[], library_dirs=LIBRARY_DIRS)
    assert libraries and all(lib.startswith(tuple(LIBRARY_DIRS)) for lib in libraries)
    # libgcc_s is dlopened by glibc (thread exit unwinding), in no DT_NEEDED list, and trusted anyway
    assert any(lib.endswith("/libgcc_s.so.1") for lib in libraries)


@needs_debian_python
@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs ldd")
def test_debian_python_closure_matches_ldd_minus_gramines_runtime() -> None:
    assert DEBIAN_PYTHON is not None
    out = subprocess.run(["ldd", DEBIAN_PYTHON], capture_output=True, text=True, check=True).stdout
    from_ldd = {line.split()[0] for line in out.splitlines() if "=>" in line} - GRAMINE_RUNTIME_LIBRARIES

    assert set(resolve_libraries([DEBIAN_PYTHON], search_dirs=LIBRARY_DIRS)) == from_ldd


def test_an_interpreter_linking_libpython_outside_the_library_dirs_is_refused() -> None:
    if not any(n.startswith("libpython") for n in read_elf_dynamic(VENV_PYTHON).needed):
        pytest.skip("this venv's interpreter links no libpython")

    with pytest.raises(UnresolvedLibrary, match=r"the interpreter .* links libpython.*distribution.s python3"):
        plan_native_libraries(interpreter=VENV_PYTHON, extensions=[], library_dirs=LIBRARY_DIRS)


def test_extension_libraries_bundled_in_site_packages_are_not_listed_as_host_libraries() -> None:
    site = sysconfig.get_paths()["purelib"]
    numpy_modules = elf_files_under([os.path.join(site, "numpy")])
    interpreter = DEBIAN_PYTHON or VENV_PYTHON
    if interpreter == VENV_PYTHON:
        pytest.skip("needs an interpreter that links no libpython")

    libraries = plan_native_libraries(
        interpreter=interpreter, extensions=numpy_modules, library_dirs=LIBRARY_DIRS, bundled_dirs=[site]
    )

    assert numpy_modules
    assert not [lib for lib in libraries if lib.startswith(site)]
    assert len(libraries) < 40  # not the thousands of files in /usr/lib


def test_a_missing_library_names_who_needs_it(tmp_path: Path) -> None:
    interpreter = DEBIAN_PYTHON or VENV_PYTHON

    with pytest.raises(UnresolvedLibrary, match=r"python3.* needs lib\w+\.so\.\d, found in none of"):
        resolve_libraries([interpreter], search_dirs=[str(tmp_path)], provided=frozenset())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"#!/bin/sh\n", "not an ELF"),
        (b"\x7fELF\x01\x01\x01" + bytes(60), "64-bit little-endian"),
        (b"\x7fELF\x02\x01\x01" + bytes(20), "not an ELF"),
    ],
)
def test_files_that_are_not_readable_elf_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "lib.so"
    path.write_bytes(content)

    with pytest.raises(ElfFormatError, match=message):
        read_elf_dynamic(path)


def test_a_truncated_binary_is_refused_not_misread(tmp_path: Path) -> None:
    data = Path(DEBIAN_PYTHON or VENV_PYTHON).read_bytes()
    path = tmp_path / "truncated"
    path.write_bytes(data[:4096])

    with pytest.raises(ElfFormatError):
        read_elf_dynamic(path)
