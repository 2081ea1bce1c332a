"""Import ``skops.io`` without importing torch.

skops builds its list of trusted scikit-learn types with ``sklearn.utils.all_estimators()``, which
walks every scikit-learn package with ``pkgutil.walk_packages``; that imports each package it
recurses into, and scikit-learn vendors an array-API shim whose ``torch`` package imports torch.
A descriptor-model worker would pay ~300 MB and seconds for a library it never calls. While skops
is first imported (once, at load time), torch is hidden: ``walk_packages`` skips a package whose
import fails. A process that already holds torch is left alone.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import threading
from types import ModuleType

_LOCK = threading.Lock()


class _HideTorch(importlib.abc.MetaPathFinder):
    """A finder that answers "no such module" for torch (``sys.modules`` stays untouched)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"{name} is hidden while skops is imported", name=name)
        return None


def skops_io() -> ModuleType:
    """The ``skops.io`` module, imported without pulling torch in as a side effect."""
    with _LOCK:
        if "skops.io" in sys.modules or "torch" in sys.modules:
            return importlib.import_module("skops.io")
        hide = _HideTorch()
        sys.meta_path.insert(0, hide)
        try:
            return importlib.import_module("skops.io")
        finally:
            sys.meta_path.remove(hide)
            for name in [m for m in sys.modules if m.startswith("sklearn.externals.array_api_compat.torch")]:
                del sys.modules[name]  # a half-imported shim: a later real import starts clean
