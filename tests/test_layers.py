"""The package's import structure (README, "Layout"; architecture, "Rules of the house").

- no import cycle between package modules, lazy imports inside functions included
  (``config`` once imported ``methods`` inside a function while ``methods`` imported
  ``config``);
- every module imports on its own, first, in a fresh interpreter;
- reconstructions never import the simulator or the ground truth.

The imports are read from the source with :mod:`ast` (every ``import`` statement anywhere
in a module, so lazy imports count), resolved to the package's own modules.
"""
import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

import wedgebench

SRC = Path(wedgebench.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def imports_in_source(source: str, name: str, is_package: bool = False) -> set[str]:
    """The package modules that the source of module ``name`` imports anywhere.

    ``from a import b`` counts ``a`` and, where it is a module, ``a.b``; relative imports
    are resolved against the module's package (``name`` itself for an ``__init__``).
    """
    package = name if is_package else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {m for m in found if m in MODULES and m != name}


def imported_modules(name: str) -> set[str]:
    """The package modules that module ``name`` imports anywhere in its source."""
    path = MODULES[name]
    return imports_in_source(path.read_text(), name, path.name == "__init__.py")


@functools.cache
def import_graph() -> dict:
    return {m: imported_modules(m) for m in MODULES}


def import_cycles(graph: dict) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_reader_sees_lazy_and_relative_imports():
    """The reader itself: imports inside functions and relative imports are edges, and a
    cycle made of them is found."""
    source = ("import numpy as np\n"
              "from .settings import deep_merge\n"
              "def check(config):\n"
              "    from .methods import method_problems\n"
              "    import wedgebench.io\n")
    assert imports_in_source(source, "wedgebench.config") == {
        "wedgebench.settings", "wedgebench.methods", "wedgebench.io"}
    assert imports_in_source("from . import model\n", "wedgebench.recon.cn", True) == {
        "wedgebench.recon.cn.model"}
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert import_cycles(graph) == []
    assert "wedgebench.config" not in graph["wedgebench.methods"]


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("first", ["wedgebench.methods", "wedgebench.config",
                                   "wedgebench.settings"])
def test_config_and_methods_import_first_without_each_other(first):
    """Importing ``methods`` (or the merge helpers) first never loads ``config``; the
    public names of both stay where callers use them."""
    out = _fresh(f"import sys, {first}\n"
                 "print(sorted(m for m in sys.modules if m.startswith('wedgebench.')))\n"
                 "from wedgebench.config import (ConfigError, check_config, deep_merge,\n"
                 "    dataset_settings, isonet_settings, dataset_acquisitions)\n"
                 "from wedgebench.methods import method_settings, method_problems\n"
                 "assert deep_merge({'a': {'b': 1}}, {'a': {'c': 2}}) == "
                 "{'a': {'b': 1, 'c': 2}}\n")
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    if first != "wedgebench.config":
        assert "wedgebench.config" not in loaded, loaded


def test_every_module_imports_first_on_its_own():
    """Each module imported first, with no other package module loaded before it.

    One fresh interpreter for all of them (a fresh one each takes ~30 s on 2 cores):
    before each import every ``wedgebench`` module is dropped from ``sys.modules``, so
    the package is imported again from scratch in that module's order; third-party
    libraries stay loaded."""
    code = ("import importlib, sys, traceback\n"
            f"names = {sorted(MODULES)!r}\n"
            "failed = []\n"
            "for name in names:\n"
            "    for m in [m for m in sys.modules if m == 'wedgebench' or "
            "m.startswith('wedgebench.')]:\n"
            "        del sys.modules[m]\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except Exception:\n"
            "        failed.append((name, traceback.format_exc(limit=3)))\n"
            "for name, tb in failed:\n"
            "    print(name, tb, file=sys.stderr)\n"
            "sys.exit(1 if failed else 0)\n")
    out = _fresh(code)
    assert out.returncode == 0, out.stderr[-5000:]


#: What a reconstruction must never see: the simulator and the ground truth.
FORBIDDEN_IN_RECON = ("wedgebench.tiltseries", "wedgebench.phantoms", "wedgebench.acquisition",
                      "wedgebench.analytic")


def _forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN_IN_RECON)


def reachable(graph: dict, start: str) -> set[str]:
    """Every module ``start`` imports, directly or through other package modules."""
    seen, todo = set(), [start]
    while todo:
        for m in graph[todo.pop()] - seen:
            seen.add(m)
            todo.append(m)
    return seen


RECON = sorted(m for m in MODULES
               if m == "wedgebench.recon" or m.startswith("wedgebench.recon."))


def test_the_recon_check_sees_lazy_simulator_imports():
    """The check would catch ``halves.py``'s old import, at module level or inside a
    function, absolute or relative."""
    for source in ("from wedgebench.tiltseries import even_odd_indices\n",
                   "def split():\n    from ...tiltseries import even_odd_indices\n",
                   "def phantom():\n    from ...phantoms import spheres\n",
                   "def noise():\n    import wedgebench.acquisition as phys\n"):
        found = imports_in_source(source, "wedgebench.recon.deepdewedge.halves")
        assert any(_forbidden(m) for m in found), source
    assert not _forbidden("wedgebench.projector") and _forbidden("wedgebench.phantoms.p22")


@pytest.mark.parametrize("module", RECON)
def test_reconstructions_never_import_the_simulator_or_the_ground_truth(module):
    """No module under ``wedgebench/recon/`` imports the simulator (``tiltseries``,
    ``acquisition``, ``analytic``) or the phantoms, directly (lazy imports included) or
    through another package module."""
    graph = import_graph()
    direct = sorted(m for m in graph[module] if _forbidden(m))
    assert not direct, f"{module} imports {direct}"
    indirect = sorted(m for m in reachable(graph, module) if _forbidden(m))
    assert not indirect, f"{module} imports {indirect} through other package modules"
