"""The package's shape: no import cycle, Textual only in the front-ends, imports pointing down the layers only,
and `gptwiz --help` fast and torch-free.

The import graph is read from the source with ast, so nothing is imported to check it. Imports inside functions
count (they run too, only later); imports under `if TYPE_CHECKING:` do not (they never run).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "gptwiz"

# Highest first; a unit may import from its own layer or any layer below it. A unit is a subpackage
# (gptwiz.cli, ...), a module at the top of the package (gptwiz.plain, gptwiz.__main__), or the package's own
# __init__ ("gptwiz", which holds only the version). Units that share a layer may import each other in one
# direction only: test_units_import_each_other_in_one_direction_only forbids a cycle between them.
LAYERS: list[tuple[str, set[str]]] = [
    ("front-ends", {"cli", "tui", "plain", "__main__"}),
    ("wizard", {"wizard"}),
    ("training", {"training", "export", "trackers", "report"}),
    ("planning", {"planning"}),
    ("runs, data, model", {"runs", "data", "model"}),
    ("common", {"common", "gptwiz"}),
]
RANK = {unit: len(LAYERS) - i for i, (_, units) in enumerate(LAYERS) for unit in units}

# Units allowed to import Textual (and its plotext widget), and the Textual front-end gptwiz.tui.
TEXTUAL = {"textual", "textual_plotext"}
TEXTUAL_USERS = {"tui", "cli"}


@dataclass
class ImportGraph:
    files: dict[str, Path] = field(repr=False)
    edges: dict[str, set[str]] = field(default_factory=dict, repr=False)  # module -> gptwiz modules it imports
    external: dict[str, set[str]] = field(default_factory=dict, repr=False)  # module -> other packages' top names


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _typing_only(tree: ast.AST) -> set[int]:
    """The ids of the nodes under `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def _imported_names(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Every dotted name an import statement may load: `from a.b import c` loads a.b and perhaps a.b.c."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def build_graph() -> ImportGraph:
    graph = ImportGraph(files={_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))})
    for module, path in graph.files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        skipped = _typing_only(tree)
        edges, external = set(), set()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in skipped:
                continue
            for name in _imported_names(module, path.name == "__init__.py", node):
                if name.split(".")[0] != PACKAGE.name:
                    external.add(name.split(".")[0])
                    continue
                while name and name not in graph.files:  # `from pkg import function`: the module is pkg
                    name = name.rpartition(".")[0]
                # A module's own parent packages are already being imported when it runs.
                if name and name != module and not module.startswith(name + "."):
                    edges.add(name)
        graph.edges[module], graph.external[module] = edges, external
    return graph


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """The cycles: Tarjan's strongly connected components of more than one node, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _describe(cycles: list[list[str]], edges: dict[str, set[str]]) -> str:
    lines = []
    for component in cycles:
        lines.append(f"cycle of {len(component)}: {', '.join(component)}")
        lines += [f"    {a} -> {b}" for a in component for b in sorted(edges[a] & set(component))]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return build_graph()


def test_graph_sees_the_whole_package(graph: ImportGraph) -> None:
    # A guard on the reader itself: the CLI's verb table and the tui app are found, with their imports.
    assert "gptwiz.cli" in graph.files and "gptwiz.tui.app" in graph.files
    assert any(e.startswith("gptwiz.tui") for e in graph.edges["gptwiz.cli.wizard"])
    assert "textual" in graph.external["gptwiz.tui.app"]


def test_every_unit_has_a_layer(graph: ImportGraph) -> None:
    missing = sorted({unit(m) for m in graph.files} - set(RANK))
    assert not missing, f"add {missing} to LAYERS in tests/test_layout.py (and docs/architecture.md's picture)"


def test_no_import_cycle(graph: ImportGraph) -> None:
    cycles = strongly_connected(graph.edges)
    assert not cycles, "import cycles (imports inside functions count):\n" + _describe(cycles, graph.edges)


def test_only_the_front_ends_import_textual(graph: ImportGraph) -> None:
    textual = sorted(f"{m} imports {', '.join(sorted(ext & TEXTUAL))}" for m, ext in graph.external.items()
                     if ext & TEXTUAL and unit(m) not in TEXTUAL_USERS)
    tui = sorted(f"{m} -> {', '.join(sorted(e for e in es if unit(e) == 'tui'))}" for m, es in graph.edges.items()
                 if unit(m) not in TEXTUAL_USERS and any(unit(e) == "tui" for e in es))
    assert not textual + tui, "only gptwiz.cli and gptwiz.tui may import Textual or gptwiz.tui:\n" + "\n".join(
        textual + tui)


def test_screens_and_widgets_never_import_the_app(graph: ImportGraph) -> None:
    # Screens ask the app through messages (gptwiz.tui.messages) and read what they share through
    # gptwiz.tui.context; importing the app, even only to type self.app under TYPE_CHECKING, would tie them to it.
    found = []
    for module, path in graph.files.items():
        if not module.startswith(("gptwiz.tui.screens", "gptwiz.tui.widgets")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = _imported_names(module, path.name == "__init__.py", node)
                if any(name == "gptwiz.tui.app" or name.startswith("gptwiz.tui.app.") for name in names):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "screens and widgets post messages to the app instead of importing it:\n" + "\n".join(found)


def test_imports_point_down_the_layers(graph: ImportGraph) -> None:
    upward = sorted(f"{m} -> {e}   ({unit(m)} may not import {unit(e)}, a higher layer)"
                    for m, es in graph.edges.items() for e in es
                    if unit(e) in RANK and unit(m) in RANK and RANK[unit(e)] > RANK[unit(m)])
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_units_import_each_other_in_one_direction_only(graph: ImportGraph) -> None:
    units: dict[str, set[str]] = {}
    for m, es in graph.edges.items():
        units.setdefault(unit(m), set()).update(unit(e) for e in es if unit(e) != unit(m))
    cycles = strongly_connected(units)
    detail = [f"    {m} -> {e}" for comp in cycles for m, es in sorted(graph.edges.items()) for e in sorted(es)
              if unit(m) in comp and unit(e) in comp and unit(e) != unit(m)]
    assert not cycles, f"subpackages that import each other: {cycles}\n" + "\n".join(detail)


def test_the_architecture_picture_names_every_unit(graph: ImportGraph) -> None:
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    picture = page.partition("\n## The layers\n")[2].partition("```\n")[2].partition("```")[0]
    drawn = re.findall(r"^ {2}(\w+)(?:/|\.py)\s", picture, flags=re.MULTILINE)
    units = sorted({unit(m) for m in graph.files} - {PACKAGE.name})
    assert sorted(drawn) == units, "docs/architecture.md's picture must have one line per subpackage and module"
    order = [RANK[u] for u in drawn]
    assert order == sorted(order, reverse=True), "the picture lists the layers from the top down"


def _gptwiz_command() -> list[str]:
    script = Path(sys.executable).with_name("gptwiz")
    if script.exists():
        return [str(script)]
    found = shutil.which("gptwiz")
    if found is None:
        pytest.skip("the gptwiz console script is not installed (pip install -e .)")
    return [found]


def test_help_answers_within_a_second() -> None:
    command = [*_gptwiz_command(), "--help"]
    times = []
    for _ in range(3):  # the best of three: a loaded machine can stall any single start
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=60)
        times.append(time.perf_counter() - start)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("usage: gptwiz"), proc.stdout[:200]
        if times[-1] < 1.0:
            break
    assert min(times) < 1.0, f"gptwiz --help took {', '.join(f'{t:.2f}' for t in times)} s"


def test_help_does_not_import_torch() -> None:
    code = ("import sys\n"
            "from gptwiz.cli import main\n"
            "try:\n"
            "    main(['--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "print('TORCH:', ' '.join(loaded[:5]) or 'none', file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: gptwiz")
    assert "TORCH: none" in proc.stderr, proc.stderr


# Rooms small enough to read in one sitting. A Textual screen may reach SCREEN_MAX_LINES: its compose, bindings and
# handlers belong together, and splitting them would only scatter one screen over several files.
MODULE_MAX_LINES = 400
SCREEN_MAX_LINES = 450
FUNCTION_MAX_LINES = 80


def test_no_module_is_over_400_lines(graph: ImportGraph) -> None:
    long = []
    for module, path in graph.files.items():
        limit = SCREEN_MAX_LINES if module.startswith("gptwiz.tui.screens.") else MODULE_MAX_LINES
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            long.append(f"{path.relative_to(REPO)}: {lines} lines (at most {limit})")
    assert not long, "modules to split by job:\n" + "\n".join(long)


def test_no_function_is_over_80_lines(graph: ImportGraph) -> None:
    long = []
    for path in graph.files.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > FUNCTION_MAX_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {lines} lines")
    assert not long, f"functions over {FUNCTION_MAX_LINES} lines, to split into named steps:\n" + "\n".join(long)


def _imports_inside_functions(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: dict[int, ast.Import | ast.ImportFrom] = {}
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found[id(node)] = node
    return sorted(found.values(), key=lambda n: n.lineno)


def test_every_import_inside_a_function_says_why(graph: ImportGraph) -> None:
    # An import inside a function is a choice (start-up time, an optional dependency, a child process's own
    # imports); the comment on its line keeps the choice from being undone by someone tidying up.
    silent = []
    for path in graph.files.values():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in _imports_inside_functions(ast.parse(source)):
            span = lines[node.lineno - 1:(node.end_lineno or node.lineno)]
            if not any("#" in line for line in span):
                silent.append(f"{path.relative_to(REPO)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not silent, "imports inside functions without a comment saying why:\n" + "\n".join(silent)


def test_the_size_checks_see_long_code() -> None:
    # A guard on the checks themselves: a long function and a silent inner import are found.
    body = "\n".join(f"    x{i} = {i}" for i in range(FUNCTION_MAX_LINES + 1))
    tree = ast.parse(f"def long():\n    import os\n{body}\n")
    function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))
    assert (function.end_lineno or 0) - function.lineno + 1 > FUNCTION_MAX_LINES
    assert [n.lineno for n in _imports_inside_functions(tree)] == [2]


def test_training_draws_nothing(graph: ImportGraph) -> None:
    # The trainer and the probe report through data (Reporter calls, records, results); how a terminal shows them
    # is the front-ends' (cli/, plain/, tui/), so a run started by the app, a pipe or torchrun draws nothing itself.
    drawing = sorted(f"{m} imports {', '.join(sorted(ext & {'rich', *TEXTUAL}))}" for m, ext in graph.external.items()
                     if unit(m) == "training" and ext & {"rich", *TEXTUAL})
    assert not drawing, "training/ imports a terminal library:\n" + "\n".join(drawing)
