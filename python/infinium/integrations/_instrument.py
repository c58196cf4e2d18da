"""Patching shared by the provider modules: one client instance (:func:`patch_attr`)
or every client, at class level (:class:`ClassInstrumentor`).

A provider's instrumentor only declares its :class:`PatchTarget` list; the provider
packages are imported by :meth:`ClassInstrumentor.instrument`, never on import.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Callable, ClassVar, Dict, List, NamedTuple, Optional, Tuple, Type

from . import _pricing
from ._context import Adapter, is_patched, make_wrapper
from ._managers import make_manager_wrapper

__all__ = ["ClassInstrumentor", "PatchTarget", "patch_attr", "sync_and_async"]

#: ``(capture_content, estimate_cost)`` -> the adapter of a wrapped method.
AdapterFactory = Callable[[bool, bool], Adapter]


def patch_attr(
    owner: Any, attr: str, adapter: Adapter, *, is_async: bool, manager: bool = False
) -> None:
    """Wrap the bound method ``owner.<attr>`` unless it is missing or already patched;
    with ``manager`` it is a stream helper returning a stream manager."""
    if owner is None:
        return
    original = getattr(owner, attr, None)
    if original is not None and not is_patched(original):
        wrap = make_manager_wrapper if manager else make_wrapper
        setattr(owner, attr, wrap(original, adapter, is_async=is_async))


class PatchTarget(NamedTuple):
    """A provider class's method that a :class:`ClassInstrumentor` wraps."""

    module: str
    cls: str
    attr: str
    is_async: bool
    adapter: AdapterFactory
    #: Instrumentor class attribute that mirrors the saved original (infinium-o2 names).
    alias: Optional[str] = None
    #: Skip the target when the class has no such method (older package versions).
    optional: bool = False
    #: The method is a stream helper returning a stream manager.
    manager: bool = False


def sync_and_async(
    module: str,
    sync_cls: str,
    async_cls: str,
    attr: str,
    adapter: AdapterFactory,
    aliases: Tuple[Optional[str], Optional[str]] = (None, None),
    *,
    optional: bool = False,
    manager: bool = False,
) -> Tuple[PatchTarget, PatchTarget]:
    """The targets of a sync resource class and its async twin (same method name)."""
    return (
        PatchTarget(module, sync_cls, attr, False, adapter, aliases[0], optional, manager),
        PatchTarget(module, async_cls, attr, True, adapter, aliases[1], optional, manager),
    )


def _resolve(targets: Tuple[PatchTarget, ...]) -> List[Tuple[PatchTarget, Any]]:
    """``(target, class)`` of the targets whose package is installed."""
    found: List[Tuple[PatchTarget, Any]] = []
    modules: Dict[str, Any] = {}
    for target in targets:
        if target.module not in modules:
            try:
                modules[target.module] = importlib.import_module(target.module)
            except ImportError:
                modules[target.module] = None
        klass = getattr(modules[target.module], target.cls, None)
        if klass is None:
            continue
        if target.optional and not hasattr(klass, target.attr):
            continue
        found.append((target, klass))
    return found


class ClassInstrumentor:
    """Patch the :attr:`targets` for every client; :meth:`uninstrument` restores them.

    A subclass declares ``targets`` and ``missing`` (the start of the warning logged
    when none of the targets' packages is installed). The originals are saved once
    per declaring class, so instrumenting again re-wraps them (with the new
    ``capture_content``) rather than wrapping a wrapper.
    """

    targets: ClassVar[Tuple[PatchTarget, ...]] = ()
    missing: ClassVar[str] = ""
    #: The class that declares ``targets`` (owner of the originals and aliases).
    _owner: ClassVar[Type[ClassInstrumentor]]
    _originals: ClassVar[Dict[Tuple[Any, str], Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "targets" in cls.__dict__:
            cls._owner = cls
            cls._originals = {}

    def __init__(self, capture_content: bool = False, *, estimate_cost: bool = False) -> None:
        self.capture_content = capture_content
        self.estimate_cost = estimate_cost

    def instrument(self) -> None:
        owner = self._owner
        if self.estimate_cost:
            _pricing.ensure_loaded()
        found = _resolve(owner.targets)
        if not found:
            logging.getLogger(owner.__module__).warning(
                owner.missing + "; " + owner.__name__ + " is a no-op"
            )
            return
        originals = owner._originals
        for target, klass in found:
            key = (klass, target.attr)
            if key not in originals:
                originals[key] = klass.__dict__.get(target.attr, getattr(klass, target.attr))
            original = originals[key]
            adapter = target.adapter(self.capture_content, self.estimate_cost)
            wrap = make_manager_wrapper if target.manager else make_wrapper
            wrapper = wrap(original, adapter, is_async=target.is_async, method=True)
            setattr(klass, target.attr, wrapper)
            if target.alias is not None:
                setattr(owner, target.alias, original)

    def uninstrument(self) -> None:
        owner = self._owner
        originals = owner._originals
        for (klass, attr), original in list(originals.items()):
            setattr(klass, attr, original)
        originals.clear()
        for target in owner.targets:
            if target.alias is not None:
                setattr(owner, target.alias, None)
