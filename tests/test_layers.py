"""Imports point one way: the contracts in pyproject.toml (import-linter), no cycle anywhere,
no oversized module."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGES = ("cli", "ingest", "store", "steps", "runner", "export", "synth")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "amlgraph").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> amlgraph modules it imports, at any level (a function-level import counts)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
                # ``from pkg import mod`` imports the module mod when there is one.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_cycle_anywhere():
    found = cycles(import_graph())
    assert not found, f"import cycles (function-level imports count): {found}"


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_500_lines():
    big = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > 500}
    assert not big, f"modules over 500 lines: {big}"


def test_subsystems_are_packages():
    for pkg in PACKAGES:
        assert (SRC / "amlgraph" / pkg / "__init__.py").exists(), pkg
    flat = [p.name for p in (SRC / "amlgraph").glob("*.py") if p.stem.split("_")[0] in PACKAGES]
    assert not flat, f"subsystem modules outside their package: {flat}"


def test_graph_knows_no_store_and_no_export():
    reached = import_graph()["amlgraph.graph"]
    assert not {m for m in reached if m.startswith(("amlgraph.store", "amlgraph.export", "amlgraph.runner"))}


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is part of the dev extra"
    proc = subprocess.run([exe, "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " kept, 0 broken" in proc.stdout


def test_each_step_key_covers_the_code_it_runs():
    """A step's key holds the code of its module and of every library module it reaches by
    import (imports of imports, function-level ones included): a change in any helper a step
    runs recomputes it. Checked against this file's independent import graph."""
    from amlgraph.runner._code import code_modules
    from amlgraph.runner._run import RUNNER_CODE
    from amlgraph.steps import declarations

    graph = import_graph()
    for name, decl in declarations().items():
        keyed = set(code_modules(decl.module, *decl.code, *RUNNER_CODE))
        seen, todo = set(), [decl.module]
        while todo:
            for target in graph.get(todo.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        assert seen - {"amlgraph.steps"} <= keyed, f"step {name}: not in its key: {sorted(seen - keyed)}"
        assert not any(m.startswith(("amlgraph.cli", "amlgraph.export")) for m in keyed), name
