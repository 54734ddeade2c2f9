"""Which code a step's key covers: its module and every library module it imports, transitively.

A step declares its module (and, in ``Step.code``, modules it reaches without importing them);
the runner adds the closure of their imports (found by reading the sources, function-level
imports included, nothing imported), so that a change in any helper a step runs recomputes it,
and a change elsewhere does not.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=None)
def _source(module: str) -> tuple[Path, bool] | None:
    """The source file of an amlgraph module (and whether it is a package), found on disk: a
    name that is not a module (``amlgraph.errors.ConfigError``) is None."""
    import amlgraph

    parts = module.split(".")
    if parts[0] != "amlgraph":
        return None
    base = Path(amlgraph.__file__).parent.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py", True
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py"), False
    return None


@lru_cache(maxsize=None)
def _imports(module: str) -> frozenset[str]:
    """The amlgraph modules ``module``'s source imports (any level, ``from pkg import mod`` as mod)."""
    found = _source(module)
    if found is None:
        return frozenset()
    path, is_package = found
    package = module if is_package else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for name in names:
            if name.startswith("amlgraph.") and _source(name) is not None:
                out.add(name)
    return frozenset(out)


def code_modules(*modules: str) -> list[str]:
    """``modules`` and every amlgraph module they import, transitively, sorted."""
    seen: set[str] = set()
    todo = [m for m in modules]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(_imports(module) - seen)
    return sorted(seen)
