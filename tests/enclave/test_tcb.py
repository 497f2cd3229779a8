"""The enclave's TCB is pinned: its modules, its distributions and its size change only with this file's pin.

When a test here fails because you added a module or a distribution to the enclave, that is the point: review
what every data owner would have to trust in addition, then re-pin in the same change with
`enclavefl enclave tcb --pinned > tests/enclave/pinned_tcb.toml`.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from enclavefl.tee.gramine_pkg.manifest import AGGREGATOR_DISTRIBUTIONS
from enclavefl.tee.gramine_pkg.tcb import TcbReport, measure_tcb, pinned_form, render_tcb

PINNED = tomllib.loads((Path(__file__).parent / "pinned_tcb.toml").read_text())
# secagg/: the unmasking math is enclave code (masked mode); the owners' masking session and relay API are not
OUTSIDE_THE_ENCLAVE = (
    "owner/",
    "sim/",
    "host/",
    "cli/",
    "demos/",
    "task/",
    "tee/insecure/",
    "secagg/masking.py",
    "secagg/relay.py",
)
NEVER_IN_THE_ENCLAVE = {
    *("torch", "scipy", "dp-accounting", "matplotlib", "scikit-learn", "typer", "rich", "pandas"),
    *("peft", "transformers", "tokenizers", "safetensors"),  # the LoRA extra (issue 27): owners only
}


@pytest.fixture(scope="module")
def report() -> TcbReport:
    return measure_tcb()


def diff(actual: list[str], pinned: list[str]) -> str:
    added, removed = sorted(set(actual) - set(pinned)), sorted(set(pinned) - set(actual))
    return f"added: {added}, removed: {removed}; review, then re-pin (see this module's docstring)"


def test_enclave_modules_are_the_pinned_ones(report: TcbReport) -> None:
    modules = [m.path for m in report.modules]
    assert modules == PINNED["modules"], diff(modules, PINNED["modules"])


def test_enclave_distributions_are_the_pinned_ones(report: TcbReport) -> None:
    names = [d.name for d in report.distributions]
    assert names == PINNED["distributions"], diff(names, PINNED["distributions"])


def test_enclave_code_stays_within_its_line_budget(report: TcbReport) -> None:
    assert report.lines <= PINNED["max_lines"], (
        f"the enclave grew to {report.lines} lines (pinned {PINNED['lines']}, budget {PINNED['max_lines']}): "
        "re-pin deliberately"
    )


def test_the_manifest_trusts_exactly_the_tcb_distributions(report: TcbReport) -> None:
    trusted = {name.lower().replace("_", "-") for name in AGGREGATOR_DISTRIBUTIONS} - {"enclavefl"}
    assert trusted == {d.name for d in report.distributions}


def test_nothing_from_outside_the_trust_boundary_is_in_the_enclave(report: TcbReport) -> None:
    assert [m.path for m in report.modules if m.path.startswith(OUTSIDE_THE_ENCLAVE)] == []
    assert {d.name for d in report.distributions} & NEVER_IN_THE_ENCLAVE == set()


def test_the_closure_covers_what_the_entry_point_really_imports(report: TcbReport) -> None:
    probe = "import sys, enclavefl.enclave.main\nprint('\\n'.join(m for m in sys.modules if m.startswith('enclavefl')))"
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
    assert set(loaded) <= {m.name for m in report.modules}


def test_a_new_import_in_an_enclave_module_grows_the_closure(tmp_path: Path) -> None:
    import shutil

    from enclavefl.tee.gramine_pkg.tcb import PACKAGE_DIR, enclave_modules

    copy = tmp_path / "enclavefl"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    node = copy / "enclave" / "node.py"
    node.write_text(node.read_text() + "\nfrom enclavefl.owner import remote  # noqa\n")

    paths = [m.path for m in enclave_modules(package_dir=copy)]

    assert "owner/remote.py" in paths
    assert diff(paths, PINNED["modules"]).startswith("added: [")


def test_pinned_form_round_trips_and_the_table_lists_every_module(report: TcbReport) -> None:
    assert tomllib.loads(pinned_form(report))["modules"] == [m.path for m in report.modules]
    table = render_tcb(report)
    assert all(m.path in table for m in report.modules)
    assert f"{len(report.modules)} modules" in table


def test_the_manifest_trusts_enclavefl_file_by_file_as_the_closure(report: TcbReport, tmp_path: Path) -> None:
    import shutil

    from enclavefl.tee.gramine_pkg.site_packages import enclave_trusted_files
    from enclavefl.tee.gramine_pkg.tcb import PACKAGE_DIR

    installed = tmp_path / "site-packages" / "enclavefl"
    shutil.copytree(PACKAGE_DIR, installed, ignore=shutil.ignore_patterns("__pycache__"))

    trusted = enclave_trusted_files(str(installed))

    assert trusted == {str(installed / m.path) for m in report.modules}
    assert str(installed / "owner" / "remote.py") not in trusted
    assert str(installed / "cli" / "main.py") not in trusted
