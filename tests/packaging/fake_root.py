"""A small Debian-like root filesystem to assemble a release from, without mmdebstrap or the network.

    root, release = make_fake_root(tmp_path)      # then assemble_release(release, root=root)

It holds what `enclavefl enclave assemble` reads: a copy of Debian's /usr/bin/python3.11 (the interpreter and the
venv's copy of it), a few stdlib files (with a __pycache__ and Debian's sitecustomize link to /etc, which a release
must not carry), the libraries the interpreter links (copied from this machine's Debian 12), an enclave venv whose
site-packages hold every aggregator distribution (stand-ins with pip RECORDs, and the real enclavefl sources), the
dpkg database that says which package installed which file, and an apt index with the .debs' sha256. The release
inputs pin exactly those packages.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

import enclavefl
from enclavefl.core.job import JobSpec, TrainConfig
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.weights import ModelWeights
from enclavefl.tee.gramine_pkg.manifest import ManifestParams
from enclavefl.tee.gramine_pkg.release_inputs import (
    DebianInputs,
    DebianPackage,
    GramineInputs,
    ReleaseInputs,
    dump_release_inputs,
)

HOST_PYTHON = Path("/usr/bin/python3.11")
HOST_LIBDIR = Path("/lib/x86_64-linux-gnu")
LIBS = ("libz.so.1", "libexpat.so.1", "libgcc_s.so.1")  # what Debian's python3.11 links, and glibc's dlopen
SITE = "opt/enclavefl/venv/lib/python3.11/site-packages"
# distribution -> (dist-info name, its files under site-packages)
DISTRIBUTIONS = {
    "numpy": ("numpy-2.0.dist-info", ["numpy/__init__.py"]),
    "cryptography": ("cryptography-43.0.dist-info", ["cryptography/__init__.py"]),
    "cffi": ("cffi-1.0.dist-info", ["cffi/__init__.py"]),
    "pycparser": ("pycparser-2.0.dist-info", ["pycparser/__init__.py"]),
    "dcap-qvl": ("dcap_qvl-0.7.0.dist-info", ["dcap_qvl/__init__.py"]),
    "grpcio": ("grpcio-1.62.dist-info", ["grpc/__init__.py"]),
    "protobuf": ("protobuf-5.0.dist-info", ["google/protobuf/__init__.py"]),
    "typing-extensions": ("typing_extensions-4.0.dist-info", ["typing_extensions.py"]),
    "enclavefl": ("enclavefl-0.1.0.dist-info", ["enclavefl/__init__.py"]),
}
STDLIB = {"os.py": "# os\n", "json/__init__.py": "# json\n", "__pycache__/os.cpython-311.pyc": "bytecode"}
GRAMINE = GramineInputs(version="1.9", libpal_sgx_sha256="1" * 64, libsysdb_sha256="2" * 64, runtime_digest="3" * 64)


def _write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)


def make_fake_root(base: Path, *, params: ManifestParams | None = None) -> tuple[Path, Path]:
    """(root, release dir with release.toml and job/job.toml); skips where Debian's python3.11 is not here."""
    if not HOST_PYTHON.is_file() or not all((HOST_LIBDIR / lib).exists() for lib in LIBS):
        pytest.skip("needs Debian 12's /usr/bin/python3.11 and its libraries to build a stand-in root")
    root = base / "root"
    owned: dict[str, list[str]] = {"python3.11-minimal": ["/usr/bin/python3.11"], "libpython3.11-stdlib": []}
    shutil.copyfile(HOST_PYTHON, _mkparent(root / "usr/bin/python3.11"))
    for name, text in STDLIB.items():
        _write(root / "usr/lib/python3.11" / name, text)
        if "__pycache__" not in name:
            owned["libpython3.11-stdlib"].append(f"/usr/lib/python3.11/{name}")
    (root / "usr/lib/python3.11/sitecustomize.py").symlink_to("/etc/python3.11/sitecustomize.py")
    for lib, package in zip(LIBS, ("zlib1g", "libexpat1", "libgcc-s1"), strict=True):
        shutil.copyfile(HOST_LIBDIR / lib, _mkparent(root / "usr/lib/x86_64-linux-gnu" / lib))
        owned[package] = [f"/lib/x86_64-linux-gnu/{lib}"]  # bookworm's packages list /lib: merged /usr aliases it
    owned["python3-pip-whl"] = ["/usr/share/python-wheels/pip-23.0.1-py3-none-any.whl"]
    _write(root / "usr/share/python-wheels/pip-23.0.1-py3-none-any.whl", b"PK")
    venv = root / "opt/enclavefl/venv"
    shutil.copyfile(HOST_PYTHON, _mkparent(venv / "bin/python3"))
    _write(venv / "pyvenv.cfg", "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n")
    (venv / "lib64").symlink_to("lib")
    _fill_site_packages(root / SITE)
    packages = _dpkg_database(root, owned)
    release = base / "release"
    job = _job_toml()
    _write(release / "job/job.toml", job)
    inputs = ReleaseInputs(
        enclavefl_version="0.1.0",
        debian=DebianInputs(
            suite="bookworm", sources=("http://deb.debian.org/debian bookworm main",), base_image="", packages=packages
        ),
        requirements=("numpy==2.0 --hash=sha256:" + "4" * 64,),
        build_requirements=("wheel==0.45.1 --hash=sha256:" + "5" * 64,),
        gramine=GRAMINE,
        enclave=params or ManifestParams(enclave_size="1G"),
        job_sha256=hashlib.sha256(job.encode()).hexdigest(),
    )
    _write(release / "release.toml", dump_release_inputs(inputs))
    return root, release


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _fill_site_packages(site: Path) -> None:
    source = Path(enclavefl.__file__).parent
    shutil.copytree(source, site / "enclavefl", ignore=shutil.ignore_patterns("__pycache__"))
    for name, (dist_info, files) in DISTRIBUTIONS.items():
        for file in files:
            if not (site / file).exists():
                _write(site / file, f"# stand-in for {name}\n")
        _write(site / dist_info / "METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        record = [*files, f"{dist_info}/METADATA", f"{dist_info}/RECORD"]
        _write(site / dist_info / "RECORD", "".join(f"{line},,\n" for line in record))


def _dpkg_database(root: Path, owned: dict[str, list[str]]) -> tuple[DebianPackage, ...]:
    packages = []
    status, index = [], []
    for number, (name, files) in enumerate(sorted(owned.items())):
        version = f"1.{number}-1"
        sha256 = hashlib.sha256(f"{name} {version}".encode()).hexdigest()
        qualified = f"{name}:amd64" if name.startswith("lib") else name
        _write(root / f"var/lib/dpkg/info/{qualified}.list", "".join(f"{f}\n" for f in files))
        status.append(f"Package: {name}\nStatus: install ok installed\nVersion: {version}\n")
        index.append(f"Package: {name}\nVersion: {version}\nSHA256: {sha256}\n")
        packages.append(DebianPackage(name=name, version=version, sha256=sha256))
    _write(root / "var/lib/dpkg/status", "\n".join(status))
    _write(root / "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages", "\n".join(index))
    return tuple(packages)


def _job_toml() -> str:
    model = ModelWeights({"w": np.zeros((8, 8), np.float32)})
    return dump_job(
        JobSpec(
            name="fake-root",
            rounds=1,
            train=TrainConfig(local_steps=1),
            model_schema=model.schema,
            initial_model_sha256=model.sha256().hex(),
        )
    )
