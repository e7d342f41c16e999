"""A job's code identity: the digest of the code it imports, derived from the imports themselves.

Each rule passes ``code_digest(its adapter script[, its method's job module])`` as a param, so
Snakemake reruns a job exactly when code that job can execute has changed. The code is found
by reading import statements (``import prunesim.x``, ``from prunesim.x import y``, relative
imports, and imports inside functions, which run when the job calls them), never by a
hand-written list, so the digests cannot drift from the code. Importing a module runs its
packages' ``__init__`` files first; they are part of the closure too. Imports under
``if TYPE_CHECKING:`` never run and are left out. A module named only as a string and imported
at run time (the registry's job modules, :mod:`prunesim.methods`) is added as a root by the
rule that runs it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "prunesim"


def package_dir() -> Path:
    """The folder of the installed (or PYTHONPATH-first) prunesim package, without importing
    anything below it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"cannot find the {PACKAGE} package")
    return Path(next(iter(spec.submodule_search_locations)))


def module_file(name: str, root: Path) -> Path | None:
    """The source file of module ``name`` inside the package at ``root``, or None."""
    parts = name.split(".")
    if parts[0] != root.name:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _module_name(file: Path, root: Path) -> str:
    relative = file.relative_to(root.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: all but those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(file: Path, root: Path, name: str | None = None) -> set[str]:
    """The modules of the package at ``root`` that ``file`` imports (``name`` is the file's
    own module name, for relative imports; None for a script)."""
    names = _imported_names(file.read_text(encoding="utf-8"), name, file.name == "__init__.py")
    if None in names:
        raise ValueError(f"{file}: a relative import outside a package")
    return {m for m in names if m.split(".")[0] == root.name and module_file(m, root) is not None}


@functools.lru_cache(maxsize=512)
def _imported_names(source: str, name: str | None, is_init: bool) -> frozenset:
    """Every module name an import statement of ``source`` can load (None for a relative
    import outside a package). Cached by the source text: the workflow digests a dozen jobs
    whose closures share most files, and parsing is what costs."""
    found = set()
    for node in _import_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:  # relative: from . import x / from ..y import z
            if name is None:
                found.add(None)
                continue
            anchor = name.split(".") if is_init else name.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        found.add(base)
        # `from package import name` imports the submodule `package.name` when there is one
        found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(found)


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def import_closure(*roots: str | os.PathLike[str], root: Path | None = None) -> list[Path]:
    """The source files a job built from ``roots`` can execute within the package: each root
    is a script path or a module name; the result holds the scripts and every package module
    they import, directly or through each other, with the packages those live in."""
    root = package_dir() if root is None else Path(root)
    scripts, pending = [], []
    for item in roots:
        text = os.fspath(item)
        if text.endswith(".py"):
            scripts.append(Path(text))
            pending.extend(imported_modules(Path(text), root))
        elif module_file(text, root) is not None:
            pending.append(text)
        else:
            raise ValueError(f"cannot digest {text!r}: neither a .py file nor a {root.name} module")
    seen: dict[str, Path] = {}
    while pending:
        module = pending.pop()
        for name in _with_parents(module):
            if name in seen:
                continue
            file = module_file(name, root)
            seen[name] = file
            pending.extend(imported_modules(file, root, name))
    return scripts + [seen[name] for name in sorted(seen)]


def code_digest(*roots: str | os.PathLike[str], root: Path | None = None) -> str:
    """SHA-256 (first 16 hex digits) of the import closure of ``roots``: the files' contents
    and their names within the package (scripts by file name), so the same code gives the
    same digest wherever the package or workflow lies."""
    root = package_dir() if root is None else Path(root)
    sha = hashlib.sha256()
    for file in import_closure(*roots, root=root):
        label = _module_name(file, root) if file.is_relative_to(root) else f"script {file.name}"
        sha.update(f"{label}\n".encode())
        sha.update(file.read_bytes())
    return sha.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    """``python -m prunesim.code_identity ROOT...``: the closure and digest of a job."""
    import sys

    roots = sys.argv[1:] if argv is None else argv
    root = package_dir()
    for file in import_closure(*roots, root=root):
        print(_module_name(file, root) if file.is_relative_to(root) else file)
    print("digest", code_digest(*roots, root=root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
