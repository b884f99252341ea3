"""OpenSSL loads when TLS is first used, not when asyncio is imported.

asyncio imports ``ssl`` (and its TLS layer, ``asyncio.sslproto``, reads from it) as it is
imported itself. That maps OpenSSL's libraries, which at a hub cost 3.3 MB of RSS, in a daemon
whose outputs and checks may never speak TLS. Before asyncio is imported, each of the two modules
is put in ``sys.modules`` as a stand-in that loads the real module on the first read of an
attribute it does not hold; from then on it holds the real module's attributes. An ``import``
statement reads only the stand-in's ``__spec__`` (the real module's spec), so importing does not
load it; using it does. A module loaded already is left as it is."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import threading
import types

TLS_MODULES = ("ssl", "asyncio.sslproto")  # sslproto reads ssl's attributes as it is imported

_lock = threading.Lock()  # two threads reading a stand-in at once load its module once


class StandIn(types.ModuleType):
    """A module not loaded yet; reading an attribute it lacks loads the real one."""

    def __getattr__(self, name: str) -> object:
        return getattr(_load(self), name)


def _load(stand_in: StandIn) -> types.ModuleType:
    with _lock:
        name = stand_in.__name__
        real = sys.modules.get(name)
        if real is stand_in or real is None:
            spec = stand_in.__spec__
            assert spec is not None and spec.loader is not None
            real = importlib.util.module_from_spec(spec)
            sys.modules[name] = real  # as an import does: the module's own imports of itself find it
            try:
                spec.loader.exec_module(real)
            except BaseException:
                sys.modules[name] = stand_in
                raise
            parent, _, child = name.rpartition(".")
            if parent and parent in sys.modules:
                setattr(sys.modules[parent], child, real)
        # The stand-in's readers (modules that imported it) see the real attributes from now on.
        vars(stand_in).update({k: v for k, v in vars(real).items() if k != "__class__"})
        return real


def defer(name: str) -> None:
    """Put a stand-in for ``name`` in ``sys.modules``, unless it is imported already or cannot
    be found (then an import fails as it would have)."""
    if name in sys.modules:
        return
    parent, _, _child = name.rpartition(".")
    # The spec of a submodule is found without importing its package (find_spec would import it).
    path = None
    if parent:
        parent_spec = importlib.util.find_spec(parent)
        if parent_spec is None or parent_spec.submodule_search_locations is None:
            return
        path = list(parent_spec.submodule_search_locations)
    spec = importlib.machinery.PathFinder.find_spec(name, path)
    if spec is None or spec.loader is None:
        return
    stand_in = StandIn(name)
    stand_in.__spec__ = spec
    stand_in.__loader__ = spec.loader
    stand_in.__package__ = spec.parent
    sys.modules[name] = stand_in


def defer_tls() -> None:
    for name in TLS_MODULES:
        defer(name)
