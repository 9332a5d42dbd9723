"""Flags for the instructor: exercise code that names or copies the package's answer.

The package is the students' textbook, so nothing stops a student from copying an object of
the answer key into an exercise; the grader cannot tell copying from re-deriving a 3-line
formula, and it does not take points for either. It flags, in the report, an exercise whose
cell (the code cell that calls ``check("X")``)

- **names** an object listed for the lab (``models.vae.kl_divergence``,
  ``from course.metrics import per_gene_pearson``): the stubs make such a call fail, and the
  flag says why the exercise got 0; or
- **copies** one: at least ``MIN_COVERAGE`` of the object's body, as normalized tokens
  (every name that is not an attribute becomes ``N``, strings ``S``; comments, docstrings and
  layout dropped, so renamed variables do not hide a copy), lies in common runs of at least
  ``MIN_RUN`` tokens. Objects shorter than ``MIN_TOKENS`` are not compared: a one-line formula
  has only one natural way to be written.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import io
import keyword
import re
import textwrap
import tokenize
from functools import cache
from pathlib import Path

from course.grading.answer_key import ANSWERS, COPY_SOURCES, Answer
from course.grading.answer_key.copies import functions

MIN_TOKENS = 40
MIN_RUN = 8
MIN_COVERAGE = 0.95
_SKIPPED_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                   tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER}


def flags(notebook, lab: int | None) -> list[str]:
    """One line per exercise cell of ``notebook`` that names or copies a listed object."""
    objects = _objects(lab)
    if not objects:
        return []
    cells = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    course_names = _course_names(cells)
    found = []
    for exercise in sorted({entry.exercise for entry in objects}, key=_exercise_order):
        pattern = re.compile(rf"""check\(\s*["']{re.escape(exercise)}["']""")
        code = "\n".join(source for source in cells if pattern.search(source))
        if not code:
            continue
        named = sorted(_named(code, objects, course_names))
        if named:
            found.append(f"{exercise}: names {', '.join(named)} (the package's own answer)")
        tokens = normalized_tokens(code)
        for entry in objects:
            share = copied_share(tokens, entry)
            if share is not None and share >= MIN_COVERAGE:
                found.append(f"{exercise}: {share:.0%} of {entry.dotted}'s code, copied")
    return list(dict.fromkeys(found))


def copied_share(tokens: list[str], entry: Answer) -> float | None:
    """The share of ``entry``'s body found in ``tokens`` in runs of ``MIN_RUN`` or more
    tokens; None for an object too short to compare."""
    body = _body_tokens(entry.target)
    if len(body) < MIN_TOKENS:
        return None
    matcher = difflib.SequenceMatcher(None, tokens, body, autojunk=False)
    common = sum(block.size for block in matcher.get_matching_blocks() if block.size >= MIN_RUN)
    return common / len(body)


def normalized_tokens(code: str) -> list[str]:
    """``code`` as tokens with names (not attributes) as ``N``, strings as ``S``, no layout.

    Notebook magics and other lines Python cannot tokenize end the sequence early.
    """
    tokens, previous = [], ""
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type in _SKIPPED_TOKENS:
                continue
            if token.type == tokenize.STRING:
                text = "S"
            elif token.type == tokenize.NAME and not keyword.iskeyword(token.string):
                text = token.string if previous == "." else "N"
            else:
                text = token.string
            tokens.append(text)
            previous = token.string
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return tokens


@cache
def _body_tokens(target: str) -> tuple[str, ...]:
    """The normalized tokens of a package object's body, without its docstring (read from
    its module's file as it is now; nothing when the object cannot be found there)."""
    module_name, qualname = target.split(":")
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return ()
    if spec is None or not spec.origin:
        return ()
    try:
        source = Path(spec.origin).read_text(encoding="utf-8")
        node = dict(functions(ast.parse(source).body, "")).get(qualname)
    except (OSError, SyntaxError, ValueError):  # a package being edited: compare nothing
        return ()
    if node is None:
        return ()
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    lines = source.splitlines()[body[0].lineno - 1 : body[-1].end_lineno] if body else []
    return tuple(normalized_tokens(textwrap.dedent("\n".join(lines))))


def _objects(lab: int | None) -> list[Answer]:
    if lab is None:
        return []
    objects = [*ANSWERS.get(lab, ()), *COPY_SOURCES.get(lab, ())]
    return list({(entry.target, entry.exercise): entry for entry in objects}.values())


def _course_names(cells: list[str]) -> set[str]:
    """The names the notebook binds to ``course`` modules (``from course import models``)."""
    names = set()
    for source in cells:
        for node in _nodes(source):
            if isinstance(node, ast.Import):
                names |= {(alias.asname or alias.name).split(".")[0]
                          for alias in node.names if alias.name.split(".")[0] == "course"}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course"):
                names |= {alias.asname or alias.name for alias in node.names}
    return names


def _named(code: str, objects: list[Answer], course_names: set[str]) -> set[str]:
    """The listed objects that ``code`` reaches through a ``course`` name or imports."""
    by_name = {entry.qualname.split(".")[-1]: entry.dotted for entry in objects}
    named = set()
    for node in _nodes(code):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course"):
            named |= {by_name[alias.name] for alias in node.names if alias.name in by_name}
        elif isinstance(node, ast.Attribute) and node.attr in by_name:
            root = node.value
            while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
                root = root.func if isinstance(root, ast.Call) else root.value
            if isinstance(root, ast.Name) and root.id in course_names:
                named.add(by_name[node.attr])
    return named


def _nodes(source: str):
    try:
        return list(ast.walk(ast.parse(source)))
    except SyntaxError:
        return []


def _exercise_order(exercise: str) -> tuple:
    return tuple(int(part) if part.isdigit() else 0 for part in exercise.split("."))
