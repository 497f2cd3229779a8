"""The enclave's TCB is pinned: its modules, its distributions and its size change only with this file's pin.

Two closures: a plain job's enclave ([plain]: it never loads an optional part: masked mode, DP, the robust rules,
the server optimizers, federated evaluation), and the release's ([release]: every optional part besides, what
Gramine trusts and the simulated MRENCLAVE hashes).

When a test here fails because you added a module or a distribution to the enclave, that is the point: review
what every data owner would have to trust in addition, then re-pin in the same change with
`enclavefl enclave tcb --pinned > tests/enclave/pinned_tcb.toml`.
"""

from __future__ import annotations

import json
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
    "tee/verify/",  # quote verification: owners and auditors
    "api/",
    "secagg/masking.py",
    # the owners' half of the transport and the job file, apart from the node's half (issue 21)
    *("transport/owner_wire.py", "transport/owner_tls.py", "core/update_message.py", "core/jobfile_write.py"),
    "transport/service.py",  # the node's service interface: a type (type checking only), issue 21
    "transport/inmemory.py",  # the in-process transport, with the waits of its calls (simulations)
    *("errors/_outside.py", "errors/_verification.py", "errors/_tree.py"),  # loaded by name, never by the enclave
)
# Owner-only (or type-only) code that once sat in modules the enclave loads: defined in none of them (any closure)
OWNER_ONLY_NAMES = (
    *("OwnerCredentials", "require_pinned_certificate", "fetch_server_certificate", "sign_join"),
    "certificate_spki_sha256",
    *("error_from_rpc", "bundle_from_proto", "summary_from_proto", "receipts_from_proto", "metadata_from_header"),
    *("UpdateMessage", "dump_job", "format_rounds", "VerifiedEnclave", "check_report_data"),
    *("status_from_proto", "receipt_from_proto", "serialize_upload_part"),
    *("RollbackDetected", "ConflictingReceipts", "UpdateOmitted", "CohortMismatch", "CertificateMismatch"),
    *("TlsKeyNotBound", "NonceMismatch", "QuoteFormatError"),
    *("ReportDataMismatch", "JobDigestMismatch", "ProtocolError"),  # raised only where owners check a node
    *("new_commitment_salt", "commitment_of_payload"),  # owners make commitments; the enclave only checks them
    "NodeService",  # a type: the enclave names it only under TYPE_CHECKING
)
# What a plain job's enclave never loads: the optional parts (enclave/parts.py) and what only they import
NEVER_IN_A_PLAIN_JOB = (
    *("enclave/masked/", "secagg/"),  # masked mode and its math
    "enclave/cohort.py",  # the cohort draw
    "privacy/",  # central DP
    *("enclave/robust_strategies.py", "aggregation/robust.py", "aggregation/bucketing.py"),
    *("aggregation/centered_clipping.py", "aggregation/server_opt.py", "enclave/evaluation.py"),
    # the job spec's checks of its optional tables, loaded by a job that has the table (core/optional_checks.py)
    *("core/secure_aggregation.py", "core/cohort.py", "core/release_check.py"),
)
# Code a plain job never runs, once in modules it loads: defined in none of them now (moved to the checks of optional
# tables, core/optional_checks.py; or gone: seal_parts, validate_update and max_abs_diff had no caller in the enclave)
NOT_IN_A_PLAIN_JOB_NAMES = (
    *("SecureAggregationSpec", "check_secure_aggregation", "check_cohort_fields", "member_commitment"),
    *("check_rule_respects_k", "seal_parts", "validate_update", "max_abs_diff"),
)
ALL_PARTS = ("cohorts", "dp", "evaluation", "masked", "robust", "server_optimizer")
PRIVACY = ("accountant", "central_dp", "noise", "params")
ROBUST_MODULES = (
    *("enclave.robust_strategies", "aggregation.robust", "aggregation.bucketing", "aggregation.centered_clipping"),
)
PART_MODULES = tuple(
    f"enclavefl.{m}"
    for m in (
        "enclave.masked",
        "enclave.cohort",
        "secagg",
        "privacy",
        *ROBUST_MODULES,
        "aggregation.server_opt",
        "enclave.evaluation",
    )
)
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


def test_a_plain_job_loads_no_optional_part_and_the_release_trusts_them(plain: TcbReport, report: TcbReport) -> None:
    assert [m.path for m in plain.modules if m.path.startswith(NEVER_IN_A_PLAIN_JOB)] == []
    assert {m.path for m in plain.modules} < {m.path for m in report.modules}  # the release trusts every part
    release = {m.path for m in report.modules}
    assert {"enclave/masked/mode.py", "privacy/central_dp.py", "aggregation/robust.py"} <= release
    assert {"aggregation/server_opt.py", "enclave/evaluation.py", "aggregation/centered_clipping.py"} <= release
    assert "enclave/cohort.py" in release
    assert plain.parts == () and report.parts == ALL_PARTS


def test_the_part_names_the_code_may_ask_for_are_the_table_itself() -> None:
    from typing import get_args

    from enclavefl.enclave.parts import PARTS, Part

    assert set(get_args(Part)) == set(PARTS)


def test_each_job_loads_only_the_parts_it_uses() -> None:
    """Run workers in one fresh process: a plain job first, then one job per part; record what each one adds.

    A plain job imports no optional part; each later job adds its own part's modules and nothing of another's."""
    probe = textwrap.dedent(
        """
        import dataclasses, json, sys
        import numpy as np
        from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
        from enclavefl.core.secure_aggregation import SecureAggregationSpec
        from enclavefl.core.weights import ModelWeights
        from enclavefl.enclave.worker import SecureWorker

        m = ModelWeights({"w": np.zeros(4, np.float32)})
        plain = JobSpec(
            name="j",
            rounds=1,
            train=TrainConfig(local_steps=1),
            min_contributions=2,
            data_owners=tuple(DataOwnerSpec(name=n) for n in "abc"),
            model_schema=m.schema,
            initial_model_sha256=m.sha256().hex(),
        )
        unweighted = StrategySpec(name="fedavg", params={"weighted": False})
        dp = {"clip_norm": 1.0, "noise_multiplier": 1.0, "delta": 1e-5, "epsilon_schedule": [10.0]}
        jobs = {
            "plain": plain,
            "dp": dataclasses.replace(plain, strategy=unweighted, dp=dp),
            "robust": dataclasses.replace(plain, strategy=StrategySpec(name="centered_clipping", params={"tau": 1.0})),
            "server_optimizer": dataclasses.replace(plain, strategy=StrategySpec(name="fedadam", params={})),
            "masked": dataclasses.replace(
                plain, secure_aggregation=SecureAggregationSpec(degree=2, threshold=2), strategy=unweighted
            ),
            "evaluation": plain,
            "cohorts": dataclasses.replace(plain, clients_per_round=2),
        }
        added, seen = {}, set()  # "plain": every module loaded so far, the worker's own imports included
        for kind, job in jobs.items():
            worker = SecureWorker(job=job, initial_model=m)
            worker.open_round()
            if kind == "evaluation":
                worker.evaluation.submit("a", 0, 5, {"loss": 1.0})
            now = {n for n in sys.modules if n.startswith("enclavefl.")}
            added[kind], seen = sorted(now - seen), now
        print(json.dumps(added))
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    added = json.loads(done.stdout)

    assert "enclavefl.enclave.worker" in added["plain"]
    assert [n for n in added["plain"] if n.startswith(PART_MODULES)] == []
    assert set(added["dp"]) == {"enclavefl.privacy", *(f"enclavefl.privacy.{m}" for m in PRIVACY)}
    assert set(added["robust"]) == {f"enclavefl.{m}" for m in ROBUST_MODULES}
    assert added["server_optimizer"] == ["enclavefl.aggregation.server_opt"]
    assert "enclavefl.enclave.masked.mode" in added["masked"]
    assert not [n for n in added["masked"] if n.startswith(PART_MODULES) and "masked" not in n and "secagg" not in n]
    assert added["evaluation"] == ["enclavefl.enclave.evaluation"]
    assert added["cohorts"] == ["enclavefl.enclave.cohort"]


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
    allowed = {"enclave/parts.py", "core/optional_checks.py", "__init__.py", "errors/__init__.py"}
    assert set(by_name) <= allowed, by_name


def test_a_plain_job_loads_no_check_of_an_optional_table_and_an_unsafe_one_is_still_refused(tmp_path: Path) -> None:
    """JobSpec checks [secure_aggregation], cohorts and non-fedavg rules from modules loaded only when the job has
    them (core/optional_checks.py): loading a plain job file imports none, and a masked job with an unsafe threshold
    is refused at the same point (its construction) with the same error. The release trusts every check module."""
    probe = textwrap.dedent(
        """
        import dataclasses, json, sys
        from enclavefl.core.jobfile import load_job
        from enclavefl.core.optional_checks import CHECKS

        job = load_job(sys.argv[1])
        plain = sorted(m for m in CHECKS.values() if m in sys.modules)
        try:
            load_job(sys.argv[2])
        except Exception as exc:
            refused = f"{type(exc).__name__}: {exc}"
        after = sorted(m for m in CHECKS.values() if m in sys.modules)
        print(json.dumps({"plain": plain, "refused": refused, "after": after}))
        """
    )
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def public_pem() -> str:
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    owners = "".join(f'[[data_owners]]\nname = "{n}"\npublic_key = """{public_pem()}"""\n' for n in "abcde")
    common = f'name = "j"\nrounds = 1\nmin_contributions = 2\ninitial_model_sha256 = "{"0" * 64}"\n'
    common += '[[model_schema]]\nname = "w"\ndtype = "float32"\nshape = [4]\n[train]\nlocal_steps = 1\n'
    plain, unsafe = tmp_path / "plain.toml", tmp_path / "unsafe.toml"
    plain.write_text(common + owners)
    unsafe.write_text(
        common + '[strategy]\nname = "fedavg"\nparams = { weighted = false }\n'
        "[secure_aggregation]\ndegree = 4\nthreshold = 2\n" + owners
    )
    done = subprocess.run([sys.executable, "-c", probe, plain, unsafe], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)

    assert seen["plain"] == []
    assert seen["refused"].startswith(
        "UnsafeSecureAggregation: secure_aggregation.threshold: 2 is too low for degree 4"
    )
    assert "enclavefl.core.secure_aggregation" in seen["after"]


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


def defined_in(report: TcbReport, names: tuple[str, ...]) -> dict[str, str]:
    """Which of `names` a module of `report` defines (functions, classes and methods), and where."""
    import ast

    from enclavefl.tee.gramine_pkg.tcb import PACKAGE_DIR

    defined = {}
    for module in report.modules:
        for node in ast.walk(ast.parse((PACKAGE_DIR / module.path).read_text())):
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in names:
                defined[node.name] = module.path
    return defined


def test_owner_only_code_is_defined_in_no_enclave_module(report: TcbReport) -> None:
    assert defined_in(report, OWNER_ONLY_NAMES) == {}


def test_code_a_plain_job_never_runs_is_defined_in_none_of_its_modules(plain: TcbReport, report: TcbReport) -> None:
    assert defined_in(plain, NOT_IN_A_PLAIN_JOB_NAMES) == {}
    assert "check_secure_aggregation" in defined_in(report, NOT_IN_A_PLAIN_JOB_NAMES)  # the probe sees the release's


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


def test_code_lines_leave_out_blank_lines_comments_and_docstrings_only(tmp_path: Path) -> None:
    from enclavefl.tee.gramine_pkg.tcb import _code_lines

    module = tmp_path / "m.py"
    module.write_text(
        textwrap.dedent(
            """\
            \"\"\"Module doc,
            two lines.\"\"\"

            # a comment
            X = 1  # code with a comment


            class A:
                \"\"\"Class doc.\"\"\"

                def f(self) -> str:
                    \"\"\"Method doc.\"\"\"
                    return \"\"\"a string
                    that is code\"\"\"
            """
        )
    )
    # X, class A, def f, and the two lines of the returned string (a string that is not a docstring is code)
    assert _code_lines(module) == 5


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
