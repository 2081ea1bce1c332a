"""The interface every variant model implements (built-in or a ``model`` plugin).

A model scores full variant sequences of one template (higher = more likely a binder). The
trainer gives it the template, the variable region and the vocabulary in a :class:`ModelContext`,
calls :meth:`VariantModel.fit` (unless ``needs_training`` is False), then saves it with
:meth:`VariantModel.save` as ``<run>/<file_name>``; the worker loads it back with :meth:`VariantModel.load`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from variants.alphabet import Vocab
from variants.dataset import VariantSet

Progress = Callable[[dict[str, Any]], None]


@dataclass
class ModelContext:
    """What a model knows about its data: template, 1-based variable region, vocabulary, embedders."""

    template: str
    region: tuple[int, int]
    vocab: Vocab
    embeddings: dict[str, Any] = field(default_factory=dict)  # the plan's ``embeddings`` section
    embedders: dict[str, type] = field(default_factory=dict)  # embedder classes by name (built-in + plugins)
    threads: int = 1

    @property
    def positions(self) -> list[int]:
        """0-based indices of the region in the full sequence."""
        return list(range(self.region[0] - 1, self.region[1]))

    def windows(self, sequences: list[str]) -> list[str]:
        a, b = self.region
        return [s[a - 1 : b] for s in sequences]

    def describe(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "region": list(self.region),
            "vocab": self.vocab.name,
            "embeddings": self.embeddings,
        }


@dataclass
class TrainConfig:
    """The plan's ``train`` section plus where to keep resumable state."""

    lr: float = 1e-3
    batch_size: int = 128
    max_epochs: int = 20
    patience: int = 4
    seed: int = 0
    checkpoint_dir: Path | None = None
    resume: bool = False


class VariantModel(ABC):
    """Subclass, set ``name``, implement :meth:`score`, :meth:`save`, :meth:`load` (and :meth:`fit` if trained)."""

    name: ClassVar[str] = ""
    needs_training: ClassVar[bool] = True
    file_name: ClassVar[str] = "model.npz"

    def __init__(self, options: dict[str, Any], context: ModelContext) -> None:
        self.options = {k: v for k, v in options.items() if k != "name"}
        self.context = context

    def fit(self, train: VariantSet, val: VariantSet, config: TrainConfig, progress: Progress) -> dict[str, Any]:
        """Train on ``train``, select on ``val`` (never the test set); the training history."""
        return {}

    @abstractmethod
    def score(self, sequences: list[str]) -> np.ndarray:
        """One float per full variant sequence; higher means more likely a binder."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write everything :meth:`load` needs to ``path`` (never a pickle)."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, context: ModelContext) -> VariantModel:
        """The model :meth:`save` wrote."""
