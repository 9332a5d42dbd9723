"""Which cells of a notebook use which names, so that a function known to hang costs seconds.

Once an exercise's probe has run past its limit, the functions and classes the student defined
for that exercise are known to hang on ordinary inputs. Every later cell whose code reaches
them (directly, or through a function, class or variable built from them) would most likely
hang too; the grader gives such cells a short limit instead of the calibrated one.

The analysis is static and deliberately simple: a name's definition "uses" every name read
anywhere in it (a class uses whatever its methods read), and a cell "runs" the names its
top-level statements read outside function and class bodies.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable

_MAGIC = re.compile(r"^\s*[%!].*$", re.M)


class NameGraph:
    """The names each cell defines and runs, and what each name's definitions read."""

    def __init__(self, sources: dict[int, str]):
        self.uses: dict[str, set[str]] = {}
        self.defines: dict[int, set[str]] = {}
        self.functions: dict[int, set[str]] = {}
        self.runs: dict[int, set[str]] = {}
        for index, source in sources.items():
            self._add_cell(index, source)

    def definitions(self, cells: Iterable[int]) -> set[str]:
        """The functions and classes defined in ``cells``."""
        return set().union(*(self.functions.get(index, set()) for index in cells))

    def reaches(self, names: Iterable[str], targets: set[str]) -> set[str]:
        """The names of ``targets`` that ``names`` lead to, following what definitions read."""
        seen, stack = set(), list(names)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(self.uses.get(name, ()))
        return seen & targets

    def cell_reaches(self, index: int, targets: set[str]) -> set[str]:
        """The names of ``targets`` that running cell ``index`` leads to."""
        return self.reaches(self.runs.get(index, ()), targets) if targets else set()

    def _add_cell(self, index: int, source: str) -> None:
        defines, functions, runs = set(), set(), set()
        try:
            tree = ast.parse(_MAGIC.sub("", source))
        except (SyntaxError, ValueError):
            tree = ast.Module(body=[], type_ignores=[])
        for statement in tree.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defines.add(statement.name)
                functions.add(statement.name)
                self.uses.setdefault(statement.name, set()).update(_reads(statement))
                continue
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                defines |= {(a.asname or a.name).split(".")[0] for a in statement.names}
                continue
            reads = _reads(statement)
            runs |= reads
            for name in _stores(statement):
                defines.add(name)
                self.uses.setdefault(name, set()).update(reads)
        self.defines[index] = defines
        self.functions[index] = functions
        self.runs[index] = runs


def _reads(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _stores(node: ast.AST) -> set[str]:
    return {
        n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
