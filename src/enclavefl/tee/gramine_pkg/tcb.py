"""The enclave's trusted computing base: the code every data owner trusts, as a reviewable list.

    modules = enclave_modules()               # enclavefl modules the entry point can import, with line counts
    report = measure_tcb()                    # + third-party distributions it loads, with versions and sizes
    print(render_tcb(report))                 # `enclavefl enclave tcb`

The enclavefl part is a static import closure from the entry module (`enclavefl.enclave.main`): every
`import` in every reached module, including imports inside functions (they run when called), except those
under `if TYPE_CHECKING:`. The enclave's optional parts (enclave/parts.py's PARTS, e.g. masked mode) are loaded
by name, only by a job that uses them, and so are the job spec's checks of its optional tables
(core/optional_checks.py's CHECKS), which count with the parts: a plain job's closure leaves them out, and the
release's closure (every part) is what Gramine trusts and what the simulated MRENCLAVE hashes (`enclave_modules()`
by default). The third-party part is measured: a fresh interpreter imports every module of the closure and reports
which distributions ended up loaded. tests/enclave/test_tcb.py pins both closures, so growing the TCB is a deliberate,
reviewed diff.

    plain, release = measure_tcb(parts=()), measure_tcb()   # a plain job's TCB; what the release trusts
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from enclavefl.errors import ConfigError
from enclavefl.tee.gramine_pkg.manifest import AGGREGATOR_ENTRY_MODULE
from enclavefl.tee.gramine_pkg.tcb_distributions import EnclaveDistribution, enclave_distributions

ROOT_PACKAGE: Final = "enclavefl"
# The one module that loads the enclave's optional parts by name; its PARTS literal is read from its source.
PARTS_MODULE: Final = "enclavefl.enclave.parts"
# The one module that loads the job spec's checks of optional tables by name (its CHECKS literal, read likewise):
# they count with the optional parts, since only a job that uses a part has the table they check.
CHECKS_MODULE: Final = "enclavefl.core.optional_checks"
# gramine_pkg/ -> tee/ -> enclavefl/
PACKAGE_DIR: Final = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True, kw_only=True)
class EnclaveModule:
    name: str  # dotted, e.g. enclavefl.enclave.node
    path: str  # relative to the enclavefl package directory, POSIX separators
    lines: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TcbReport:
    entry: str
    parts: tuple[str, ...]  # the optional parts (enclave/parts.py) counted besides the entry's own closure
    modules: tuple[EnclaveModule, ...]
    distributions: tuple[EnclaveDistribution, ...]

    @property
    def lines(self) -> int:
        return sum(m.lines for m in self.modules)

    @property
    def distribution_bytes(self) -> int:
        return sum(d.size_bytes for d in self.distributions)


def enclave_modules(
    entry: str = AGGREGATOR_ENTRY_MODULE, package_dir: Path = PACKAGE_DIR, *, parts: Iterable[str] | None = None
) -> tuple[EnclaveModule, ...]:
    """The enclavefl modules `entry` can import (itself and every parent package included), sorted by name.

    `parts`: the optional parts (enclave/parts.py) whose closures count too; None (the default) counts every part:
    the union, what the release trusts. `parts=()` is a plain job's closure.
    """
    seen = _closure([entry], package_dir)
    if PARTS_MODULE in seen:  # the entry can load optional parts by name: add the chosen parts' closures
        known = enclave_parts(package_dir)
        chosen = list(known) if parts is None else list(parts)
        unknown = sorted(set(chosen) - set(known))
        if unknown:
            raise ConfigError(f"no enclave part named {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        checks = (
            _literal_table(CHECKS_MODULE, "CHECKS", package_dir).values() if CHECKS_MODULE in seen and chosen else ()
        )
        seen = _closure([entry, *(known[p] for p in chosen), *checks], package_dir)
    return tuple(
        EnclaveModule(name=name, path=path.relative_to(package_dir).as_posix(), lines=_count_lines(path))
        for name, path in sorted(seen.items())
    )


def enclave_parts(package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """enclave/parts.py's PARTS (part -> root module), read from its source: the build host never imports it."""
    return _literal_table(PARTS_MODULE, "PARTS", package_dir)


def _literal_table(module: str, table: str, package_dir: Path) -> dict[str, str]:
    """`module`'s dict literal `table` of names to module names, read from its source."""
    path = _module_path(module, package_dir)
    target: ast.expr
    for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id == table and value is not None:
            found = ast.literal_eval(value)
            if isinstance(found, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
                return found
            break
    raise ConfigError(f"{path}: {table} must be a literal dict of names to module names")


def _closure(roots: Iterable[str], package_dir: Path) -> dict[str, Path]:
    seen: dict[str, Path] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = _module_path(name, package_dir)
        seen[name] = path
        pending.extend(_parent_packages(name))
        pending.extend(_enclavefl_imports(name, path, package_dir))
    return seen


def measure_tcb(
    entry: str = AGGREGATOR_ENTRY_MODULE, package_dir: Path = PACKAGE_DIR, *, parts: Iterable[str] | None = None
) -> TcbReport:
    """The closure (see `enclave_modules` for `parts`) plus the third-party distributions it needs, each marked by
    whether importing it loads it.

    The distributions are those the closure imports (statically, anywhere in a module) and, recursively, what
    they declare they require (extras excluded, markers evaluated here): the set pip installs for the enclave
    and the manifest must trust. A fresh interpreter then imports every module of the closure to mark which of
    them are actually loaded; an optional import that succeeds only because a package happens to be installed
    (grpcio tries `grpc_tools`) is not part of the TCB.
    """
    modules = enclave_modules(entry, package_dir, parts=parts)
    chosen = tuple(sorted(enclave_parts(package_dir))) if parts is None else tuple(parts)
    return TcbReport(
        entry=entry,
        parts=chosen if any(m.name == PARTS_MODULE for m in modules) else (),
        modules=modules,
        distributions=enclave_distributions(tuple(m.name for m in modules), _third_party_imports(modules, package_dir)),
    )


def render_tcb(report: TcbReport) -> str:
    """Plain-text tables: modules with lines, distributions with versions and sizes, and the totals."""
    width = max(len(m.path) for m in report.modules)
    rows = [f"enclave TCB from {report.entry}, {_parts_title(report)}", "", f"{'enclavefl module':<{width}}  lines"]
    rows += [f"{m.path:<{width}}  {m.lines:>5}" for m in report.modules]
    rows += [f"{f'{len(report.modules)} modules':<{width}}  {report.lines:>5}", ""]
    dwidth = max(len(d.name) for d in report.distributions)
    rows.append(f"{'distribution':<{dwidth}}  {'version':<10}  {'files':>5}  {'size':>9}  loaded")
    for d in report.distributions:
        loaded = "yes" if d.imported else "no"
        rows.append(f"{d.name:<{dwidth}}  {d.version:<10}  {d.files:>5}  {_mib(d.size_bytes):>9}  {loaded}")
    total_files = sum(d.files for d in report.distributions)
    rows.append(
        f"{f'{len(report.distributions)} distributions':<{dwidth}}  {'':<10}  {total_files:>5}  "
        f"{_mib(report.distribution_bytes):>9}"
    )
    return "\n".join(rows)


def _parts_title(report: TcbReport) -> str:
    if not report.parts:
        return "a plain job (no optional part)"
    return f"with {' + '.join(report.parts)}: what the release trusts in full"


def pinned_form(plain: TcbReport, release: TcbReport) -> str:
    """The TOML that tests/enclave/pinned_tcb.toml holds: names only, so versions may move but the sets may not.

    [plain] is a plain job's closure, [release] every optional part besides (what Gramine trusts)."""
    header = (
        "# The enclave's TCB, pinned: tests/enclave/test_tcb.py fails when the enclave's import closure or its\n"
        "# third-party distributions differ from these lists, or its lines exceed max_lines. Regenerate with\n"
        "# `enclavefl enclave tcb --pinned > tests/enclave/pinned_tcb.toml` and review the diff: it is what\n"
        "# every data owner is asked to trust in addition. [plain]: a plain job's enclave; [release]: with every\n"
        "# optional part (enclave/parts.py), what the release trusts and the simulated MRENCLAVE hashes.\n"
    )
    return header + "\n".join(_pinned_table(name, r) for name, r in (("plain", plain), ("release", release)))


def _pinned_table(name: str, report: TcbReport) -> str:
    modules = "\n".join(f'    "{m.path}",' for m in report.modules)
    distributions = "\n".join(f'    "{d.name}",' for d in report.distributions)
    parts = ", ".join(f'"{p}"' for p in report.parts)
    return (
        f"[{name}]\n"
        f'entry = "{report.entry}"\n'
        f"parts = [{parts}]\n"
        f"lines = {report.lines}\n"
        f"max_lines = {_line_budget(report.lines)}\n"
        f"modules = [\n{modules}\n]\n"
        f"distributions = [\n{distributions}\n]\n"
    )


def _line_budget(lines: int) -> int:
    """Room for small edits (5%, rounded up to 100 lines); a bigger growth is a deliberate re-pin."""
    return -(-int(lines * 1.05) // 100) * 100


def _module_path(name: str, package_dir: Path) -> Path:
    parts = name.split(".")
    if parts[0] != ROOT_PACKAGE:
        raise ConfigError(f"{name} is not an enclavefl module")
    base = package_dir.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"enclave module {name} has no source file under {package_dir}")


def _parent_packages(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _enclavefl_imports(name: str, path: Path, package_dir: Path) -> list[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[str] = []
    for base, names in _imports_in(path.read_text(encoding="utf-8"), str(path), package):
        found.append(base)
        # `from enclavefl.x import y` imports the submodule y when there is one
        found.extend(m for m in (f"{base}.{n}" for n in names) if _is_module(m, package_dir))
    return [m for m in found if m == ROOT_PACKAGE or m.startswith(ROOT_PACKAGE + ".")]


@functools.lru_cache(maxsize=1024)
def _imports_in(source: str, filename: str, package: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(module, names imported from it) per runtime import in `source`; cached by the text: an edit parses anew."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for node in _runtime_nodes(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            found.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((_absolute(node.module, node.level, package), tuple(alias.name for alias in node.names)))
    return tuple(found)


def _runtime_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """Every node except the bodies of `if TYPE_CHECKING:` blocks, which never run."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: str | None, level: int, package: str) -> str:
    if level == 0:
        return module or ""
    base = package.split(".")[: len(package.split(".")) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _is_module(name: str, package_dir: Path) -> bool:
    parts = name.split(".")
    if parts[0] != ROOT_PACKAGE:
        return False
    base = package_dir.joinpath(*parts[1:])
    return (base / "__init__.py").is_file() or base.with_suffix(".py").is_file()


def _count_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines())


def _third_party_imports(modules: Iterable[EnclaveModule], package_dir: Path) -> set[str]:
    """Top-level names of non-stdlib, non-enclavefl modules imported anywhere in `modules` (TYPE_CHECKING aside)."""
    names: set[str] = set()
    for module in modules:
        path = package_dir / module.path
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _runtime_nodes(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.partition(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in {ROOT_PACKAGE, "__future__"}}


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
