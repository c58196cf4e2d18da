"""Every public name has a docstring: each name in ``__all__`` of ``infinium``
and of its public modules (no ``_``-prefixed part in the dotted path). The API
reference (``mkdocs build --strict``, docs/) renders them.

Classes and functions are checked at run time (``help()`` shows the same
text); a class's docstring must be its own, not one inherited or the
signature ``dataclasses`` writes in. Constants and aliases have no
``__doc__`` of their own: the string literal after their assignment, in the
module that binds them (followed through ``from ... import``), is their
docstring, as the reference renders it."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import inspect
import pkgutil
from functools import cache
from types import ModuleType
from typing import Any, List, Optional, Tuple

import pytest

import infinium


def public_modules() -> List[str]:
    names = ["infinium"]
    for info in pkgutil.walk_packages(infinium.__path__, "infinium."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names)


@cache
def _tree(module: str) -> Tuple[ModuleType, ast.Module]:
    mod = importlib.import_module(module)
    return mod, ast.parse(inspect.getsource(mod))


def attribute_docstring(module: str, name: str, depth: int = 0) -> Optional[str]:
    """The string literal after ``name``'s assignment where ``module`` binds it."""
    if depth > 5:
        return None
    mod, tree = _tree(module)
    package = module if hasattr(mod, "__path__") else module.rpartition(".")[0]
    body = tree.body
    for i, node in enumerate(body):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                after = body[i + 1] if i + 1 < len(body) else None
                if (
                    isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)
                ):
                    return after.value.value
                return None
        elif isinstance(node, ast.ImportFrom):
            source = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            for alias in node.names:
                if (alias.asname or alias.name) == name or (
                    alias.name == "*" and hasattr(importlib.import_module(source), name)
                ):
                    original = name if alias.name == "*" else alias.name
                    return attribute_docstring(source, original, depth + 1)
    return None


def docstring(module: str, name: str, value: Any) -> Optional[str]:
    if inspect.isclass(value):
        doc = vars(value).get("__doc__")
        if dataclasses.is_dataclass(value) and doc and doc.startswith(f"{value.__name__}("):
            return None  # written by @dataclass, not by us
        return doc
    if inspect.isroutine(value):
        return getattr(value, "__doc__", None)
    return attribute_docstring(module, name)


def public_names() -> List[Tuple[str, str]]:
    out = []
    for module in public_modules():
        mod = importlib.import_module(module)
        out += [(module, name) for name in getattr(mod, "__all__", [])]
    return out


def test_every_public_module_has_a_docstring_and_an_all() -> None:
    lacking = [
        m
        for m in public_modules()
        if not (importlib.import_module(m).__doc__ or "").strip()
        or not hasattr(importlib.import_module(m), "__all__")
    ]
    assert lacking == []
    assert len(public_names()) > 100  # the walk found the package


def test_every_public_name_has_a_docstring() -> None:
    missing = [
        f"{module}.{name}"
        for module, name in public_names()
        if not (
            docstring(module, name, getattr(importlib.import_module(module), name)) or ""
        ).strip()
    ]
    assert missing == []


def test_the_checker_sees_what_is_missing() -> None:
    # A constant without a string after it, a dataclass without a docstring,
    # and a function without one are all reported; a documented one is not.
    assert attribute_docstring("infinium.utils", "no_such_name") is None

    @dataclasses.dataclass
    class Bare:
        x: int

    def bare() -> None:
        pass

    assert docstring("m", "Bare", Bare) is None
    assert docstring("m", "bare", bare) is None
    assert docstring("infinium", "InfiniumClient", infinium.InfiniumClient)


@pytest.mark.parametrize("module", ["infinium.client", "infinium.async_client"])
def test_constants_are_followed_through_imports(module: str) -> None:
    # MAX_NAME_LENGTH is bound in utils and imported (or star-imported) here.
    doc = attribute_docstring("infinium.utils", "MAX_NAME_LENGTH")
    assert doc and attribute_docstring(module, "MAX_NAME_LENGTH") == doc
