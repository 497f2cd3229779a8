"""The enclave's TCB is pinned: its modules, its distributions and its size change only with this file's pin.

Two closures: a plain job's enclave ([plain]: it never loads an optional part such as masked mode), and the
release's ([release]: every optional part besides, what Gramine trusts and the simulated MRENCLAVE hashes).

When a test here fails because you added a module or a distribution to the enclave, that is the point: review
what every data owner would have to trust in addition, then re-pin in the same change with
`enclavefl enclave tcb --pinned > tests/enclave/pinned_tcb.toml`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from enclavefl.tee.gramine_pkg.manifest import AGGREGATOR_DISTRIBUTIONS
from enclavefl.tee.gramine_pkg.tcb import TcbReport, measure_tcb, pinned_form, render_tcb

PINS = tomllib.loads((Path(__file__).parent / "pinned_tcb.toml").read_text())
PINNED = PINS["release"]
PLAIN = PINS["plain"]
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
)
# What a plain job's enclave never loads: masked mode and its math
NEVER_IN_A_PLAIN_JOB = ("enclave/masked/", "secagg/", "enclave/cohort.py")
NEVER_IN_THE_ENCLAVE = {
    *("torch", "scipy", "dp-accounting", "matplotlib", "scikit-learn", "typer", "rich", "pandas"),
    *("peft", "transformers", "tokenizers", "safetensors"),  # the LoRA extra (issue 27): owners only
}


@pytest.fixture(scope="module")
def report() -> TcbReport:
    """The release's closure: the entry point and every optional part."""
    return measure_tcb()


@pytest.fixture(scope="module")
def plain() -> TcbReport:
    """A plain job's closure: no optional part."""
    return measure_tcb(parts=())


def diff(actual: list[str], pinned: list[str]) -> str:
    added, removed = sorted(set(actual) - set(pinned)), sorted(set(pinned) - set(actual))
    return f"added: {added}, removed: {removed}; review, then re-pin (see this module's docstring)"


def test_enclave_modules_are_the_pinned_ones(report: TcbReport) -> None:
    modules = [m.path for m in report.modules]
    assert modules == PINNED["modules"], diff(modules, PINNED["modules"])


def test_enclave_distributions_are_the_pinned_ones(report: TcbReport) -> None:
    names = [d.name for d in report.distributions]
    assert names == PINNED["distributions"], diff(names, PINNED["distributions"])


def test_a_plain_jobs_modules_and_distributions_are_the_pinned_ones(plain: TcbReport) -> None:
    modules, names = [m.path for m in plain.modules], [d.name for d in plain.distributions]
    assert modules == PLAIN["modules"], diff(modules, PLAIN["modules"])
    assert names == PLAIN["distributions"], diff(names, PLAIN["distributions"])
    assert plain.lines <= PLAIN["max_lines"], f"a plain job's enclave grew to {plain.lines} lines: re-pin deliberately"


def test_a_plain_job_loads_no_masked_mode_and_the_release_trusts_it(plain: TcbReport, report: TcbReport) -> None:
    assert [m.path for m in plain.modules if m.path.startswith(NEVER_IN_A_PLAIN_JOB)] == []
    assert {m.path for m in plain.modules} < {m.path for m in report.modules}  # the release trusts every part
    assert "enclave/masked/mode.py" in {m.path for m in report.modules}
    assert "enclave/cohort.py" in {m.path for m in report.modules}
    assert plain.parts == () and report.parts == ("cohorts", "masked")


def test_a_plain_jobs_enclave_really_imports_no_masked_module() -> None:
    """Run a plain, a masked and a cohort job's worker: only the masked one imports enclave.masked and secagg, only
    the cohort one enclave.cohort."""
    probe = textwrap.dedent(
        """
        import dataclasses, sys
        import numpy as np
        from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
        from enclavefl.core.secure_aggregation import SecureAggregationSpec
        from enclavefl.core.weights import ModelWeights
        from enclavefl.enclave.worker import SecureWorker

        m = ModelWeights({"w": np.zeros(4, np.float32)})
        job = JobSpec(
            name="j",
            rounds=1,
            train=TrainConfig(local_steps=1),
            min_contributions=2,
            data_owners=tuple(DataOwnerSpec(name=n) for n in "abc"),
            model_schema=m.schema,
            initial_model_sha256=m.sha256().hex(),
        )
        if sys.argv[1] == "masked":
            masked = SecureAggregationSpec(degree=2, threshold=2)
            unweighted = StrategySpec(name="fedavg", params={"weighted": False})
            job = dataclasses.replace(job, secure_aggregation=masked, strategy=unweighted)
        if sys.argv[1] == "cohort":
            job = dataclasses.replace(job, clients_per_round=2)
        SecureWorker(job=job, initial_model=m).open_round()
        parts = ("enclavefl.enclave.masked", "enclavefl.secagg", "enclavefl.enclave.cohort")
        print(sorted(n for n in sys.modules if n.startswith(parts)))
        """
    )
    loaded = {
        kind: subprocess.run(
            [sys.executable, "-c", probe, kind], check=True, capture_output=True, text=True
        ).stdout.strip()
        for kind in ("plain", "masked", "cohort")
    }
    assert loaded["plain"] == "[]"
    assert "'enclavefl.enclave.masked.mode'" in loaded["masked"]
    assert loaded["cohort"] == "['enclavefl.enclave.cohort']"


def test_only_enclave_parts_loads_modules_by_name(report: TcbReport) -> None:
    """A module loaded by name escapes the static closure: the one place allowed is enclave/parts.py, whose
    PARTS the closure reads. (enclavefl/__init__.py loads the public API table and errors/ its outside-only leaves:
    names no enclave module asks for, tests/api/test_public_names.py and tests/core/test_errors_package.py.)"""
    from enclavefl.tee.gramine_pkg.tcb import PACKAGE_DIR

    by_name = [
        m.path
        for m in report.modules
        if "import_module(" in (PACKAGE_DIR / m.path).read_text() or "__import__(" in (PACKAGE_DIR / m.path).read_text()
    ]
    assert set(by_name) <= {"enclave/parts.py", "__init__.py", "errors/__init__.py"}, by_name


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
    node.write_text(node.read_text() + "\nfrom enclavefl.owner import data_owner_loop  # noqa\n")

    paths = [m.path for m in enclave_modules(package_dir=copy)]

    assert "owner/data_owner_loop.py" in paths
    assert diff(paths, PINNED["modules"]).startswith("added: [")


def test_pinned_form_round_trips_and_the_table_lists_every_module(plain: TcbReport, report: TcbReport) -> None:
    pins = tomllib.loads(pinned_form(plain, report))
    assert pins["release"]["modules"] == [m.path for m in report.modules]
    assert pins["plain"]["modules"] == [m.path for m in plain.modules]
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
    assert str(installed / "enclave" / "masked" / "mode.py") in trusted  # every optional part: the release's
    assert str(installed / "owner" / "data_owner_loop.py") not in trusted
    assert str(installed / "cli" / "main.py") not in trusted
