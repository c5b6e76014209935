"""The architecture rule (docs/architecture.md), read from the source with `ast`.

The top-level packages are rooms, in this order; a module imports only from its own room or
the rooms before it. No import cycle between modules, imports inside functions included. An
import inside a function is there only to defer a heavy library: the smap module it imports
loads one of HEAVY when imported (itself or through other smap modules), and there are at
most MAX_INSIDE_IMPORTS of them. `smap --help` loads none of HEAVY.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter, deque
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROOMS = (
    "configs",
    "ingestion",
    "feature_repo",
    "training",
    "analytics",
    "serving",
    "monitoring",
    "pipelines",
)
# libraries whose import costs a second or more on this machine (`python -X importtime`)
HEAVY = ("feast", "mlflow", "tensorflow", "keras", "bentoml", "evidently", "pyspark")
HEAVY += ("optuna", "sklearn", "scipy", "plotly", "lightgbm", "xgboost")
# 39 today; a command or stage that loads MLflow, Feast or SciPy on purpose reaches them through
# one deferred import (e.g. `training.registry.champion_entry`), not one per module it uses
MAX_INSIDE_IMPORTS = 40

# Imports inside functions left out of the checks while a rewrite is under way: none now.
PENDING: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    path: str  # relative to the checkout, e.g. "pipelines/cli.py"
    line: int
    importer: str  # the importing module, e.g. "pipelines.cli"
    name: str  # what is imported, e.g. "training.train.train", "pipelines.flows", "mlflow"
    where: str  # "module", "function" or "typing" (under `if TYPE_CHECKING:`, never run)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def target(self) -> str | None:
        """The smap module imported: the longest prefix of `name` that is one."""
        parts = self.name.split(".")
        names = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
        return next((name for name in names if name in modules()), None)

    @property
    def library(self) -> str:
        return self.name.split(".")[0]

    @property
    def pending(self) -> bool:
        return (self.path, self.target) in PENDING


def room(module: str) -> str:
    return module.split(".")[0]


@cache
def modules() -> dict[str, Path]:
    """Every module of the rooms by dotted name (a package by its own name)."""
    found = {}
    for package in ROOMS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """`import a.b` names a.b; `from a.b import c` names a.b.c (a module, or a name in a.b)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative to the importing module's package
        parts, is_package = module.split("."), modules()[module].name == "__init__.py"
        package = parts[: len(parts) - node.level + is_package]
        base = ".".join([*package, *filter(None, [node.module])])
    return [f"{base}.{alias.name}" for alias in node.names]


def is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")


def imports_of(module: str) -> list[Import]:
    """Every import of a module, with where it runs."""
    path = str(modules()[module].relative_to(ROOT))
    found = []

    def visit(node: ast.AST, where: str) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = imported_names(node, module)
            found.extend(Import(path, node.lineno, module, name, where) for name in names)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            where = "function"
        if is_type_checking(node) and where == "module":
            for child in node.body:
                visit(child, "typing")
            for child in node.orelse:
                visit(child, where)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, where)

    visit(ast.parse(modules()[module].read_text(), path), "module")
    return found


@cache
def all_imports() -> tuple[Import, ...]:
    return tuple(i for module in modules() for i in imports_of(module))


def smap_imports(*where: str) -> list[Import]:
    """Imports of smap modules that run `where` (one per statement and module), pending ones
    left out."""
    seen, out = set(), []
    for i in all_imports():
        key = (i.path, i.line, i.target)
        if i.target and i.where in where and not i.pending and key not in seen:
            seen.add(key)
            out.append(i)
    return out


@cache
def module_level(module: str) -> tuple[Import, ...]:
    """What importing `module` runs: its module-level imports."""
    return tuple(i for i in all_imports() if i.importer == module and i.where == "module")


def with_packages(module: str | None) -> list[str]:
    """`module` and the packages whose __init__ importing it runs first."""
    parts = (module or "").split(".")
    return [name for n in range(1, len(parts) + 1) if (name := ".".join(parts[:n])) in modules()]


@cache
def heavy_chain(module: str) -> tuple[str, ...]:
    """The shortest chain of smap modules through which importing `module` loads a HEAVY
    library, ending with the library; () when it loads none."""
    came_from: dict[str, str | None] = {module: None}
    queue = deque([module])
    while queue:
        current = queue.popleft()
        for i in module_level(current):
            if i.library in HEAVY:
                chain = [current]
                while came_from[chain[-1]] is not None:
                    chain.append(came_from[chain[-1]])
                return (*reversed(chain), i.library)
            for nxt in with_packages(i.target):
                if nxt not in came_from:
                    came_from[nxt] = current
                    queue.append(nxt)
    return ()


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (its first module repeated at the end) per back edge of a depth-first walk."""
    cycles, state, path = [], {}, []

    def walk(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            walk(node)
    return cycles


def test_a_room_imports_only_from_rooms_before_it():
    order = " -> ".join(ROOMS)
    wrong = [
        f"{i}: {i.importer} imports {i.target} ({room(i.target)} comes after {room(i.importer)})"
        for i in all_imports()
        if i.target and ROOMS.index(room(i.target)) > ROOMS.index(room(i.importer))
    ]
    assert not wrong, f"a room imports only from rooms before it ({order}):\n" + "\n".join(wrong)


def test_no_import_cycle_between_modules():
    edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], Import] = {}
    for i in smap_imports("module", "function"):
        if i.target != i.importer:
            edges.setdefault(i.importer, set()).add(i.target)
            where.setdefault((i.importer, i.target), i)
    lines = [
        " -> ".join(cycle) + "  (" + ", ".join(str(where[pair]) for pair in pairwise(cycle)) + ")"
        for cycle in find_cycles(edges)
    ]
    assert not lines, "import cycles (imports inside functions count too):\n" + "\n".join(lines)


def test_imports_inside_functions_only_defer_a_heavy_library():
    light = [f"{i}: {i.target}" for i in smap_imports("function") if not heavy_chain(i.target)]
    assert not light, (
        f"imported inside a function, but loading none of {', '.join(HEAVY)} (import them at "
        "the top of the module):\n" + "\n".join(light)
    )


def test_few_imports_inside_functions():
    inside = smap_imports("function")
    per_file = Counter(i.path for i in inside)
    listing = "\n".join(f"{n:4d} {path}" for path, n in per_file.most_common())
    assert len(inside) <= MAX_INSIDE_IMPORTS, (
        f"{len(inside)} imports of smap modules inside functions (at most "
        f"{MAX_INSIDE_IMPORTS}):\n{listing}"
    )


def test_pending_lists_are_current():
    live = {(i.path, i.target) for i in all_imports() if i.where == "function"}
    gone = sorted(PENDING - live)
    assert not gone, f"no longer imported inside a function; remove from the pending lists: {gone}"


HELP_THEN_LOADED = """
import sys
from pipelines.cli import main
main(["--help"])
print("loaded:", *sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:])))
"""


def test_smap_help_loads_no_heavy_library():
    run = subprocess.run(
        [sys.executable, "-c", HELP_THEN_LOADED, *HEAVY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    loaded = [line for line in run.stdout.splitlines() if line.startswith("loaded:")][-1]
    loaded = loaded.split()[1:]
    chain = " -> ".join(heavy_chain("pipelines.cli"))
    assert not loaded, f"`smap --help` imports {', '.join(loaded)} (through: {chain or '?'})"
