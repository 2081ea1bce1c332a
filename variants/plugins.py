"""Plugins: trusted local Python code in the working directory, registered by name.

**Plugins are trusted code**: a ``.py`` file in ``<workdir>/model/``, ``embed/``, ``metrics/`` or
``vocab/`` is executed with the trainer's (or worker's) rights when it loads. Only the configured
working directory is searched, never a path from a plan or a request. Each class defined in such
a file that subclasses its kind's base (:class:`~variants.models.base.VariantModel`,
:class:`~variants.embed.Embedder`, :class:`~variants.metrics.Metric`,
:class:`~variants.alphabet.VocabPlugin`) is registered under its ``name``. A file that fails to
import is reported by file and line (:class:`PluginFailure`) and skipped; asking for a name only
it would have provided is an error that quotes that report.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
KINDS = ("model", "embed", "metrics", "vocab")


@dataclass(frozen=True)
class PluginFailure:
    kind: str
    file: str
    line: int | None
    error: str

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}" if self.line else self.file
        return f"{self.kind} plugin {where} failed to load: {self.error}"


@dataclass
class Registry:
    """Classes by kind and name (built-ins first, plugins may add names but not replace built-ins)."""

    classes: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: {} for k in KINDS})
    failures: list[PluginFailure] = field(default_factory=list)
    origins: dict[tuple[str, str], str] = field(default_factory=dict)

    def get(self, kind: str, name: str) -> Any:
        found = self.classes[kind].get(name)
        if found is not None:
            return found
        broken = [str(f) for f in self.failures if f.kind == kind]
        known = ", ".join(sorted(self.classes[kind])) or "none"
        detail = f"; {'; '.join(broken)}" if broken else ""
        raise LookupError(f"no {kind} named {name!r} (known: {known}){detail}")


def _bases() -> dict[str, type]:
    from variants.alphabet import VocabPlugin
    from variants.embed import Embedder
    from variants.metrics import Metric
    from variants.models.base import VariantModel

    return {"model": VariantModel, "embed": Embedder, "metrics": Metric, "vocab": VocabPlugin}


def builtins() -> Registry:
    from variants.embed import AntibertyEmbedder
    from variants.metrics import BUILTIN_METRICS
    from variants.models.cnn import CNNModel
    from variants.models.embedding import EmbeddingHead
    from variants.models.zeroshot import ZeroShotPLL

    reg = Registry()
    reg.classes["model"].update({m.name: m for m in (CNNModel, EmbeddingHead, ZeroShotPLL)})
    reg.classes["model"]["embed-ridge"] = EmbeddingHead  # the head is an option; both names work
    reg.classes["embed"][AntibertyEmbedder.name] = AntibertyEmbedder
    reg.classes["metrics"].update(BUILTIN_METRICS)
    return reg


def _failure(kind: str, path: Path, exc: BaseException) -> PluginFailure:
    line = None
    if isinstance(exc, SyntaxError) and exc.filename == str(path):
        line = exc.lineno
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path):
            line = frame.lineno
    return PluginFailure(kind, str(path), line, f"{type(exc).__name__}: {exc}"[:500])


def load_plugins(workdir: Path | None, registry: Registry | None = None) -> Registry:
    """Built-ins plus every plugin class under ``workdir`` (see the module docstring)."""
    reg = registry or builtins()
    if workdir is None:
        return reg
    bases = _bases()
    for kind in KINDS:
        folder = workdir / kind
        for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
            if path.name.startswith("_"):
                continue
            module_name = f"variants_plugins.{kind}.{path.stem}"
            try:
                spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
                sys.modules[module_name] = module
                spec.loader.exec_module(module)  # type: ignore[union-attr]  # trusted local code (see above)
            except Exception as exc:
                sys.modules.pop(module_name, None)
                failure = _failure(kind, path, exc)
                reg.failures.append(failure)
                log.warning("%s", failure)
                continue
            for obj in vars(module).values():
                if isinstance(obj, type) and issubclass(obj, bases[kind]) and obj.__module__ == module_name:
                    name = getattr(obj, "name", "")
                    if not name:
                        reg.failures.append(PluginFailure(kind, str(path), None, f"class {obj.__name__} has no name"))
                    elif name in reg.classes[kind] and (kind, name) not in reg.origins:
                        reg.failures.append(PluginFailure(kind, str(path), None, f"{name!r} is a built-in name"))
                    else:
                        reg.classes[kind][name] = obj
                        reg.origins[(kind, name)] = str(path)
    return reg


def vocab(registry: Registry, name: str) -> Any:
    """The named vocabulary: a built-in, or a ``vocab`` plugin's."""
    from variants.alphabet import BUILTIN_VOCABS

    if name in BUILTIN_VOCABS:
        return BUILTIN_VOCABS[name]
    return registry.get("vocab", name).vocab()
