"""A real release, built with Gramine 1.9's tools and run under its LibOS (GRAMINE=1; CI skips these).

Needs root, mmdebstrap, the Debian archive and PyPI (the build fetches pinned packages), and Gramine 1.9 on PATH
(gramine-manifest, gramine-sgx-sign with the SGX PAL, gramine-direct). Two builds of one job's release, in two
directories, the second in a mount namespace where this machine's zlib and Python stdlib under /usr were changed,
must give the same MRENCLAVE (computed by gramine-sgx-sign); then the node runs a 3-round job under gramine-direct
from the release's own manifest, owners and model owner outside it, and releases the model the same job releases
with the node as an ordinary process. docs/gramine.md, "Gramine tests", has the results of a run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from federation_setup import TASK, tiny_federation

from enclavefl.demos.gramine_direct import run_direct_federation, run_native_federation
from enclavefl.demos.process_federation import FederationFiles
from enclavefl.tee.gramine_pkg import parse_sigstruct

pytestmark = [pytest.mark.gramine, pytest.mark.timeout(3600)]

SOURCE = Path(__file__).resolve().parents[2]
BUILD = SOURCE / "packaging" / "enclave" / "build-release.sh"
ENCLAVEFL = Path(sys.executable).with_name("enclavefl")
# Both are read on every build by tools the build runs on this machine (apt, Python): a release that took either
# from the host would change with them.
HOST_STDLIB_FILE = Path("/usr/lib/python3.11/os.py")
HOST_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/libz.so.1")


def _tools_or_skip() -> None:
    missing = [
        t for t in ("gramine-manifest", "gramine-sgx-sign", "gramine-direct", "mmdebstrap") if not shutil.which(t)
    ]
    if missing or os.geteuid() != 0:
        pytest.skip(f"needs root and {', '.join(missing) or 'nothing else'} (docs/gramine.md, 'Gramine tests')")


def _build(release: Path, job: Path, *, wrapper: list[str] | None = None) -> bytes:
    """`enclave init` then build-release.sh; the release's MRENCLAVE."""
    subprocess.run([str(ENCLAVEFL), "enclave", "init", str(release), "--job", str(job)], cwd=SOURCE, check=True)
    subprocess.run([*(wrapper or []), str(BUILD), str(release)], cwd=SOURCE, check=True)
    return parse_sigstruct((release / "aggregator.sig").read_bytes()).mrenclave


def _host_changed(tmp_path: Path) -> list[str]:
    """A command prefix running its command where this machine's stdlib file and zlib differ (private mounts)."""
    changed = tmp_path / "host-changed"
    changed.mkdir()
    binds = []
    for original in (HOST_STDLIB_FILE, HOST_LIBRARY.resolve()):
        copy = changed / original.name
        copy.write_bytes(original.read_bytes() + b"\n# changed by an update of the host\n")  # still loads
        binds.append(f"mount --bind {copy} {original}")
    return ["unshare", "-m", "sh", "-c", " && ".join([*binds, 'exec "$@"']), "sh"]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> FederationFiles:
    base = tmp_path_factory.mktemp("direct")
    return tiny_federation(
        base / "fed", owners=2, rounds=3, min_contributions=2, deadline=120.0, platform_dir=base / "platform"
    )


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, federation: FederationFiles) -> Path:
    _tools_or_skip()
    directory = tmp_path_factory.mktemp("release") / "a"
    _build(directory, federation.job)
    return directory


def test_a_rebuild_elsewhere_after_the_host_changed_gives_the_same_mrenclave(
    release: Path, federation: FederationFiles, tmp_path: Path
) -> None:
    other = tmp_path / "somewhere" / "else"

    mrenclave = _build(other, federation.job, wrapper=_host_changed(tmp_path))

    assert mrenclave == parse_sigstruct((release / "aggregator.sig").read_bytes()).mrenclave
    assert (other / "aggregator.manifest").read_bytes() == (release / "aggregator.manifest").read_bytes()
    assert (other / "aggregator.files").read_bytes() == (release / "aggregator.files").read_bytes()


def test_the_node_runs_a_three_round_job_under_gramine_direct(release: Path, federation: FederationFiles) -> None:
    slots = tomllib.loads((release / "aggregator.manifest").read_text())["sgx"]["max_threads"]

    direct, usage = run_direct_federation(federation, release_dir=release, task=TASK)
    direct_model = hashlib.sha256((federation.directory / "final.safetensors").read_bytes()).digest()
    run_native_federation(federation, task=TASK)
    native_model = hashlib.sha256((federation.directory / "final.safetensors").read_bytes()).digest()

    assert [s.round for s in direct.summaries] == [1, 2, 3]
    assert direct_model == native_model  # the LibOS ran the same aggregation
    assert 0 < usage.max_threads <= slots  # the real thread count fits the SGX thread slots the release signs
    assert any((release / "state").iterdir())  # the node's state went through the encrypted mount
