"""The layering of DESIGN.md §3 holds: imports point down, siblings stay apart, the enclave's import set is small."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import enclavefl

PACKAGE_DIR = Path(enclavefl.__file__).parent

# top to bottom; packages on one level are siblings
# `enclave` is everything the enclave runs; `owner` runs at data owners and the model owner; `sim` runs a whole
# federation in one process; `host` is the untrusted side of a node (which TEE, the simulated platform).
LAYERS: list[set[str]] = [
    {"cli"},
    {"demos"},
    {"api"},  # the public API (re-exported by enclavefl/__init__.py): the parties over sim, host and owner
    {"sim", "host"},
    {"enclave", "owner"},
    {"transport", "task"},
    {"aggregation", "privacy", "secagg", "tee"},
    {"core"},
    {"errors"},
]
ALLOWED_SIBLING_IMPORTS = {("privacy", "aggregation")}  # privacy wraps aggregation's Protocol
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}
# the package's own two files stand above every layer: __init__ (the public names) and __main__ (python -m enclavefl)
PACKAGE_FILES = {"__init__", "__main__"}
# tee/insecure: reached only through a flag named insecure, and by the API's simulation (tee_insecure in its result)
INSECURE_IMPORTERS = {"cli", "demos", "api", "host", "tee"}
TORCH_ALLOWED = {
    "core/torch_adapter.py",
    "task/",
    "owner/data_owner.py",
    "api/simulation.py",
    "demos/",
    "cli/",
}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "_pb2" not in p.name)


def top_package(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR)
    return rel.parts[0].removesuffix(".py")


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def layering_violations() -> list[str]:
    problems = []
    for path in modules():
        src = top_package(path)
        if src in PACKAGE_FILES or src not in LEVEL:
            continue
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[0] != "enclavefl" or len(parts) < 2:
                continue
            dst = parts[1]
            if dst == src or dst not in LEVEL:
                continue
            rel = path.relative_to(PACKAGE_DIR)
            if LEVEL[dst] < LEVEL[src]:
                problems.append(f"{rel} imports {name}: {dst} is above {src}")
            elif LEVEL[dst] == LEVEL[src] and (src, dst) not in ALLOWED_SIBLING_IMPORTS:
                problems.append(f"{rel} imports {name}: {src} and {dst} are siblings")
            if name.startswith("enclavefl.tee.insecure") and src not in INSECURE_IMPORTERS:
                problems.append(f"{rel} imports {name}: only the CLI, demos and host may reach tee.insecure")
    return problems


# tee/ is laid out by audience: what the enclave runs (tee/inside and the shared vocabulary at tee/'s top) never
# reaches what owners run to verify (tee/verify), the build tooling (tee/gramine_pkg) or the simulation.
ENCLAVE_SIDE = ("enclave/", "tee/inside/", "tee/evidence.py", "tee/binding.py", "tee/backend.py", "tee/collateral.py")
OUTSIDE_TEE = ("enclavefl.tee.verify", "enclavefl.tee.gramine_pkg", "enclavefl.tee.insecure")


def test_the_enclave_side_reaches_no_verifier_build_or_simulation_code() -> None:
    offenders = [
        f"{rel} imports {name}"
        for path in modules()
        if (rel := path.relative_to(PACKAGE_DIR).as_posix()).startswith(ENCLAVE_SIDE)
        for name in imported_modules(path)
        if name.startswith(OUTSIDE_TEE)
    ]
    assert offenders == []


MAX_MODULE_LINES = 400  # STYLE.md: small modules, none hand-written over 400 lines


def test_no_hand_written_module_is_over_400_lines() -> None:
    sizes = {p.relative_to(PACKAGE_DIR).as_posix(): len(p.read_text().splitlines()) for p in modules()}
    assert {rel: n for rel, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_the_simulation_reaches_the_worker_only_through_the_node() -> None:
    """sim/ drives enclave/node.py's AggregatorNode (one node for simulation and deployment), never the worker or
    its parts: a simulation that called the worker would run its own round loop again."""
    offenders = [
        f"{rel} imports {name}"
        for path in modules()
        if (rel := path.relative_to(PACKAGE_DIR).as_posix()).startswith(("sim/", "api/simulation.py"))
        for name in all_imports(path)
        if name.startswith("enclavefl.enclave.") and not name.startswith("enclavefl.enclave.node")
    ]
    assert offenders == []


def test_owners_import_no_enclave_code() -> None:
    """Owners run beside the enclave, never inside: they talk to a node over a transport."""
    offenders = [
        f"{rel} imports {name}"
        for path in modules()
        if (rel := path.relative_to(PACKAGE_DIR).as_posix()).startswith("owner/")
        for name in all_imports(path)
        if name == "enclavefl.enclave" or name.startswith("enclavefl.enclave.")
    ]
    assert offenders == []


def test_every_package_is_assigned_a_layer() -> None:
    packages = {top_package(p) for p in modules()} - PACKAGE_FILES
    assert packages <= set(LEVEL), f"unassigned: {packages - set(LEVEL)}"


def test_imports_point_down_only() -> None:
    assert layering_violations() == []


def test_torch_is_imported_only_on_the_data_owner_side() -> None:
    offenders = []
    for path in modules():
        rel = path.relative_to(PACKAGE_DIR).as_posix()
        if any(rel == a or (a.endswith("/") and rel.startswith(a)) for a in TORCH_ALLOWED):
            continue
        if any(n == "torch" or n.startswith("torch.") for n in imported_modules(path)):
            offenders.append(rel)
    assert offenders == []


def test_no_pickle_anywhere_in_the_package() -> None:
    offenders = [
        str(p.relative_to(PACKAGE_DIR))
        for p in modules()
        if any(n.split(".")[0] in {"pickle", "cloudpickle", "dill", "shelve"} for n in imported_modules(p))
        or "torch.load(" in p.read_text()
    ]
    assert offenders == []


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["enclavefl.enclave.main", "enclavefl.enclave.worker"])
def test_enclave_import_set_excludes_training_and_ui_libraries(entry: str) -> None:
    code = (
        f"import sys, {entry}\n"
        "bad = sorted(m for m in ('torch', 'matplotlib', 'sklearn', 'typer', 'rich', 'pandas') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert out == "", f"{entry} pulls in {out}"


def module_name(path: Path) -> str:
    return ".".join(("enclavefl", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)).removesuffix(".__init__")


def all_imports(path: Path) -> list[str]:
    """Imported names, `from a import b` also as `a.b`; `if TYPE_CHECKING:` imports count too (a cycle there is
    still two modules that cannot be read, or split, one without the other)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_import_graph() -> dict[str, set[str]]:
    """enclavefl module -> the enclavefl modules it imports directly (its own parent packages aside)."""
    paths = {module_name(p): p for p in modules()}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets = {t for t in all_imports(path) if t in paths and t != name}
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_there_are_no_import_cycles_between_modules() -> None:
    assert import_cycles(module_import_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.slow
def test_import_enclavefl_is_light_and_every_public_name_resolves() -> None:
    code = (
        "import sys, enclavefl\n"
        "heavy = sorted(m for m in ('torch', 'grpc', 'numpy', 'sklearn', 'typer') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
        "missing = [n for n in enclavefl.__all__ if getattr(enclavefl, n, None) is None]\n"
        "print(','.join(missing))\n"
    )
    heavy, missing = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert heavy == "", f"import enclavefl pulls in {heavy}"
    assert missing == ""
