"""Package names imported on first use, so importing a package never pays for its heaviest modules.

``compass.model`` and ``compass.train`` re-export names whose modules pull in torch_geometric;
the worker imports only light siblings of those (checkpoints, plans, run files).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, modules: dict[str, tuple[str, ...]]) -> tuple[Callable[[str], Any], list[str]]:
    """A module ``__getattr__`` importing each name's module when the name is first read, and ``__all__``."""
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(where[name]), name)

    return __getattr__, sorted(where)
