"""`enclave assemble` lays out a release from its build root alone: the runtime, the venv, a manifest of release paths.

A stand-in root (fake_root.py) replaces mmdebstrap's: the real one is built by the `gramine` tests. What is shown
here, on every machine: what the release holds and leaves out, that nothing is read from this machine's /usr (an
audit hook watches every file the assembler opens), that two assemblies are identical wherever they are made, and
that a root with other Debian packages than the pinned ones is refused before anything is copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from fake_root import LIBS, make_fake_root

from enclavefl.core.job_canonical import load_canonical_job
from enclavefl.core.jobfile import load_job
from enclavefl.errors import ReleaseInputError, RuntimePinMismatch
from enclavefl.tee.gramine_pkg import check_rendered_manifest
from enclavefl.tee.gramine_pkg.assemble import assemble_release
from enclavefl.tee.gramine_pkg.fileset import expand_trusted_files, file_set_digest
from enclavefl.tee.gramine_pkg.manifest import JOB_FILE_IN_ENCLAVE


def tree_digest(directory: Path) -> dict[str, str]:
    found = {}
    for path in sorted(directory.rglob("*")):
        relative = str(path.relative_to(directory))
        found[relative] = (
            f"-> {os.readlink(path)}"
            if path.is_symlink()
            else (hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir")
        )
    return found


def test_the_release_holds_the_roots_runtime_without_bytecode_or_links_out(tmp_path: Path) -> None:
    root, release = make_fake_root(tmp_path)

    assembled = assemble_release(release, root=root)

    stdlib = release / "runtime/usr/lib/python3.11"
    assert (stdlib / "os.py").read_text() == "# os\n" and (stdlib / "json/__init__.py").is_file()
    assert not list(stdlib.rglob("__pycache__"))  # timestamped bytecode is never measured
    assert not (stdlib / "sitecustomize.py").exists()  # Debian links it to /etc, outside the release
    libdir = release / "runtime/usr/lib/x86_64-linux-gnu"
    assert sorted(p.name for p in libdir.iterdir()) == sorted(assembled.libraries) == sorted(LIBS)
    for lib in LIBS:  # real files, with the root's bytes, under the soname the loader looks up
        assert not (libdir / lib).is_symlink()
        assert (libdir / lib).read_bytes() == (root / "usr/lib/x86_64-linux-gnu" / lib).read_bytes()
    assert (release / "venv/bin/python3").read_bytes() == (root / "usr/bin/python3.11").read_bytes()
    assert (release / "venv/lib64").is_symlink()
    assert os.access(release / "run.sh", os.X_OK) and "gramine-sgx aggregator" in (release / "run.sh").read_text()


def test_the_release_holds_the_jobs_canonical_form_which_the_enclave_loads_to_the_same_digest(tmp_path: Path) -> None:
    root, release = make_fake_root(tmp_path)

    assemble_release(release, root=root)

    from_toml = load_job(release / "job/job.toml")
    assert (release / "job/job.json").read_text() == from_toml.canonical_text() + "\n"
    assert load_canonical_job(release / JOB_FILE_IN_ENCLAVE.removeprefix("/enclavefl/")).digest() == from_toml.digest()


def test_a_job_that_is_not_self_contained_is_refused_at_assembly(tmp_path: Path) -> None:
    root, release = make_fake_root(tmp_path)
    job = release / "job/job.toml"
    recorded = hashlib.sha256(job.read_bytes()).hexdigest()
    job.write_text(job.read_text() + '\n[model_owner]\ncertificate = "model-owner.pem"\n')  # beside job.toml
    inputs = release / "release.toml"  # recorded as `enclave init` would: only the conversion may refuse it
    inputs.write_text(inputs.read_text().replace(recorded, hashlib.sha256(job.read_bytes()).hexdigest()))

    with pytest.raises(ReleaseInputError, match=r"model_owner\.certificate: cannot read .*model-owner\.pem"):
        assemble_release(release, root=root)


def test_the_manifest_names_only_release_paths_and_passes_the_hardening_check(tmp_path: Path) -> None:
    root, release = make_fake_root(tmp_path)

    assemble_release(release, root=root)

    manifest = tomllib.loads((release / "aggregator.manifest.template").read_text())
    trusted = manifest["sgx"]["trusted_files"]
    assert str(tmp_path) not in json.dumps(manifest)
    assert "file:runtime/usr/lib/python3.11/" in trusted and "file:job/" in trusted
    assert "file:venv/lib/python3.11/site-packages/enclavefl/enclave/main.py" in trusted
    assert not [uri for uri in trusted if "enclavefl/cli/" in uri or "enclavefl/owner/" in uri]
    check_rendered_manifest(manifest)


def test_every_trusted_file_is_in_the_release_and_measures_the_same_in_two_places(tmp_path: Path) -> None:
    root, first = make_fake_root(tmp_path / "a")
    _, second = make_fake_root(tmp_path / "elsewhere" / "b")
    second.joinpath("release.toml").write_bytes(first.joinpath("release.toml").read_bytes())
    second.joinpath("job/job.toml").write_bytes(first.joinpath("job/job.toml").read_bytes())

    digests = []
    for release in (first, second):
        assemble_release(release, root=root)
        (release / "gramine/runtime/glibc").mkdir(parents=True)  # add-gramine's part, outside this test
        manifest = tomllib.loads((release / "aggregator.manifest.template").read_text())
        cwd = Path.cwd()
        os.chdir(release)  # the URIs are relative to the release, as for gramine-manifest
        try:
            digests.append(file_set_digest(expand_trusted_files(manifest["sgx"]["trusted_files"])))
        finally:
            os.chdir(cwd)

    assert digests[0] == digests[1]
    template = "aggregator.manifest.template"
    assert (first / template).read_bytes() == (second / template).read_bytes()
    assert tree_digest(first / "runtime") == tree_digest(second / "runtime")


ASSEMBLE_WATCHED = """
import json, sys
from pathlib import Path
from enclavefl.tee.gramine_pkg.assemble import assemble_release
from enclavefl.tee.gramine_pkg.manifest import JOB_FILE_IN_ENCLAVE
import enclavefl.tee.gramine_pkg.native_libs, shutil, tomllib, hashlib  # imported before the hook
opened = []
def watch(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes, Path)):
        opened.append(str(args[0]))
sys.addaudithook(watch)
assemble_release(Path(sys.argv[1]), root=Path(sys.argv[2]))
print(json.dumps(opened))
"""


@pytest.mark.slow
def test_the_assembler_opens_nothing_under_this_machines_usr(tmp_path: Path) -> None:
    # The host's /usr could change tomorrow (unattended upgrades); the release must not depend on it, so it must
    # not even be read. Every file Python opens while assembling is recorded by an audit hook.
    root, release = make_fake_root(tmp_path)

    done = subprocess.run(
        [sys.executable, "-c", ASSEMBLE_WATCHED, str(release), str(root)], capture_output=True, text=True, check=True
    )

    opened = json.loads(done.stdout.splitlines()[-1])
    assert any(path.startswith(str(root)) for path in opened)  # the hook saw the assembler's reads
    under_usr = [p for p in opened if os.path.realpath(p).startswith(("/usr/", "/lib/", "/lib64/", "/etc/"))]
    assert under_usr == []


def test_a_root_with_another_version_of_a_pinned_package_is_refused_before_copying(tmp_path: Path) -> None:
    root, release = make_fake_root(tmp_path)
    status = root / "var/lib/dpkg/status"
    status.write_text(
        status.read_text().replace(
            "Package: zlib1g\nStatus: install ok installed\nVersion: 1.",
            "Package: zlib1g\nStatus: install ok installed\nVersion: 9.",
        )
    )

    with pytest.raises(RuntimePinMismatch, match=r"zlib1g 9\."):
        assemble_release(release, root=root)
    assert not (release / "runtime").exists()


def test_a_runtime_file_no_package_installed_is_refused(tmp_path: Path) -> None:
    root, release = make_fake_root(tmp_path)
    (root / "usr/lib/python3.11/injected.py").write_text("# dropped here by someone\n")

    with pytest.raises(RuntimePinMismatch, match="no Debian package installed 1 runtime file"):
        assemble_release(release, root=root)


def test_a_job_other_than_the_recorded_one_is_refused(tmp_path: Path) -> None:
    root, release = make_fake_root(tmp_path)
    job = release / "job/job.toml"
    job.write_text(job.read_text() + "\n# edited after init\n")

    with pytest.raises(ReleaseInputError, match=r"is not the job release\.toml records"):
        assemble_release(release, root=root)


def test_a_venv_whose_interpreter_is_a_link_is_refused(tmp_path: Path) -> None:
    # a link would resolve, on the host, to whatever python3.11 the host has
    root, release = make_fake_root(tmp_path)
    interpreter = root / "opt/enclavefl/venv/bin/python3"
    interpreter.unlink()
    interpreter.symlink_to("/usr/bin/python3.11")

    with pytest.raises(ReleaseInputError, match="must be a copy of the interpreter"):
        assemble_release(release, root=root)
