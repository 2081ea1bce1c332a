r"""SpliceAI-10k (Jaganathan et al., Cell 2019) in PyTorch, loaded from the Keras .h5 files of the spliceai wheel.

The network: a 1×1 convolution to 32 channels, 16 residual units (batch norm → ReLU →
dilated convolution, twice) in four groups of kernel 11/11/21/41 and dilation 1/4/10/25, a
skip path that adds a 1×1 convolution after every group, a crop of 5,000 positions on each
side, and a 1×1 convolution with softmax over (neither, acceptor, donor). Its receptive field
is exactly ±5,000 nucleotides, so every output depends on the 10,001 nucleotides around it
and on nothing else: padding a batch with extra N (all-zero one-hot) never changes an answer.

Weights are read with h5py (no TensorFlow). Keras numbers its layers in creation order
(``conv1d_1`` … ``conv1d_39``, ``batch_normalization_1`` … ``_32``), and
:meth:`SpliceAI.keras_order` lists our layers in the order the original code created them;
:func:`load_keras_h5` checks every shape, kernel size and dilation against the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

CONTEXT = 10_000
KERNELS = (11,) * 8 + (21,) * 4 + (41,) * 4
DILATIONS = (1,) * 4 + (4,) * 4 + (10,) * 4 + (25,) * 4
GROUP = 4  # a skip connection after every 4 residual units
_BN_EPS = 1e-3  # Keras' BatchNormalization default, as saved in the files
_SUFFIX = re.compile(r"_(\d+)$")


class ResidualUnit(nn.Module):
    """BN → ReLU → dilated conv, twice, plus the input (cropped: the convolutions are unpadded)."""

    def __init__(self, channels: int, kernel: int, dilation: int, groups: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm1d(channels, eps=_BN_EPS)
        self.conv1 = nn.Conv1d(channels, channels, kernel, dilation=dilation, groups=groups)
        self.bn2 = nn.BatchNorm1d(channels, eps=_BN_EPS)
        self.conv2 = nn.Conv1d(channels, channels, kernel, dilation=dilation, groups=groups)
        self.shrink = (kernel - 1) * dilation  # positions lost on each side by the two convolutions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(torch.relu(self.bn1(x)))
        h = self.conv2(torch.relu(self.bn2(h)))
        return h + x[:, :, self.shrink : x.shape[-1] - self.shrink]


class SpliceAI(nn.Module):
    """SpliceAI-10k, or an ensemble of ``members`` of them fused into one grouped network.

    One-hot DNA ``[B, 4, L + context]`` → mean probabilities ``[B, 3, L]`` of (neither, acceptor,
    donor). Member ``m`` owns channels ``m·C … (m+1)·C - 1`` of every layer and grouped
    convolutions keep the members apart, so the fused network computes exactly the mean of the
    separate models, in one pass that a CPU runs 2-3× faster than the members one by one.

    Convolutions are unpadded and each residual path is cropped to match: an output only ever
    depends on its ±``context/2`` neighbours, so this equals Keras' ``same`` padding followed by
    the final crop, without computing the positions the crop throws away.

    Args:
        members: models in the ensemble (default: 1).
        channels: width of every hidden layer of one member (default: 32).
        kernels: kernel size of each residual unit (default: SpliceAI-10k's).
        dilations: dilation of each residual unit (default: SpliceAI-10k's).
    """

    def __init__(
        self,
        members: int = 1,
        channels: int = 32,
        kernels: Sequence[int] = KERNELS,
        dilations: Sequence[int] = DILATIONS,
    ) -> None:
        super().__init__()
        if len(kernels) != len(dilations) or len(kernels) % GROUP:
            raise ValueError(f"kernels and dilations must have equal lengths, a multiple of {GROUP}")
        self.members = members
        self.channels = channels
        width = members * channels
        self.context = sum(2 * (k - 1) * d for k, d in zip(kernels, dilations, strict=True))  # 10,000
        self.stem = nn.Conv1d(4, width, 1)
        self.skip = nn.Conv1d(width, width, 1, groups=members)
        self.units = nn.ModuleList(ResidualUnit(width, k, d, members) for k, d in zip(kernels, dilations, strict=True))
        self.dense = nn.ModuleList(nn.Conv1d(width, width, 1, groups=members) for _ in range(len(kernels) // GROUP))
        self.head = nn.Conv1d(width, 3 * members, 1, groups=members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        skip = self.skip(h)
        for i, unit in enumerate(self.units):
            h = unit(h)
            if (i + 1) % GROUP == 0:
                cut = (skip.shape[-1] - h.shape[-1]) // 2
                skip = skip[:, :, cut : skip.shape[-1] - cut] + self.dense[i // GROUP](h)
        logits = self.head(skip)  # [B, 3·members, L]
        probs = torch.softmax(logits.view(logits.shape[0], self.members, 3, -1), dim=2)
        return probs.mean(dim=1)

    def keras_order(self) -> tuple[list[nn.Conv1d], list[nn.BatchNorm1d]]:
        """Convolutions and batch norms in the order SpliceAI's Keras code created them."""
        convs: list[nn.Conv1d] = [self.stem, self.skip]
        norms: list[nn.BatchNorm1d] = []
        for i, unit in enumerate(self.units):
            convs += [unit.conv1, unit.conv2]
            norms += [unit.bn1, unit.bn2]
            if (i + 1) % GROUP == 0:
                convs.append(self.dense[i // GROUP])
        convs.append(self.head)
        return convs, norms


def _by_creation(names: Sequence[str], prefix: str) -> list[str]:
    found = [n for n in names if n.startswith(prefix) and _SUFFIX.search(n)]
    return sorted(found, key=lambda n: int(_SUFFIX.search(n).group(1)))  # type: ignore[union-attr]


def _tensor(group: h5py.Group, name: str) -> torch.Tensor:
    """A layer's weight by its short name (``kernel``, ``gamma``...), wherever Keras nested it."""
    for key in group.attrs["weight_names"]:
        key = key.decode() if isinstance(key, bytes) else key
        if key.rsplit("/", 1)[-1].split(":")[0] == name:
            return torch.from_numpy(np.asarray(group[key], dtype=np.float32))
    raise KeyError(f"{group.name} has no weight {name!r}")


def load_keras_h5(paths: Sequence[str | Path]) -> SpliceAI:
    """A fused :class:`SpliceAI` in eval mode whose members are the wheel's ``spliceaiN.h5`` files, in order."""
    model = SpliceAI(members=len(paths))
    convs, norms = model.keras_order()
    for m, path in enumerate(paths):
        _load_member(path, m, len(paths), convs, norms)
    return model.eval()


def _load_member(path: str | Path, m: int, members: int, convs: list[nn.Conv1d], norms: list[nn.BatchNorm1d]) -> None:
    """Copy one file's weights into member ``m``'s channels of every layer."""
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        layers = {layer["config"]["name"]: layer for layer in config["config"]["layers"]}
        weights = f["model_weights"]
        conv_names = _by_creation([n for n, layer in layers.items() if layer["class_name"] == "Conv1D"], "conv1d")
        norm_names = _by_creation(
            [n for n, layer in layers.items() if layer["class_name"] == "BatchNormalization"], "batch_normalization"
        )
        if len(conv_names) != len(convs) or len(norm_names) != len(norms):
            raise ValueError(
                f"{path}: {len(conv_names)} convolutions and {len(norm_names)} batch norms; expected "
                f"{len(convs)} and {len(norms)} (not a SpliceAI-10k model)"
            )
        for name, conv in zip(conv_names, convs, strict=True):
            cfg = layers[name]["config"]
            if (cfg["kernel_size"][0], cfg["dilation_rate"][0]) != (conv.kernel_size[0], conv.dilation[0]):
                raise ValueError(
                    f"{path}: {name} has kernel {cfg['kernel_size']} and dilation {cfg['dilation_rate']}; "
                    f"expected {conv.kernel_size} and {conv.dilation}"
                )
            rows = _rows(conv.out_channels, m, members)
            kernel = _tensor(weights[name], "kernel").permute(2, 1, 0)  # Keras (k, in, out) → torch (out, in, k)
            _copy(conv.weight[rows], kernel, f"{path}:{name}/kernel")
            _copy(conv.bias[rows], _tensor(weights[name], "bias"), f"{path}:{name}/bias")
        for name, norm in zip(norm_names, norms, strict=True):
            group = weights[name]
            rows = _rows(norm.num_features, m, members)
            _copy(norm.weight[rows], _tensor(group, "gamma"), f"{path}:{name}/gamma")
            _copy(norm.bias[rows], _tensor(group, "beta"), f"{path}:{name}/beta")
            _copy(norm.running_mean[rows], _tensor(group, "moving_mean"), f"{path}:{name}/moving_mean")
            _copy(norm.running_var[rows], _tensor(group, "moving_variance"), f"{path}:{name}/moving_variance")


def _rows(width: int, m: int, members: int) -> slice:
    """The block of a layer's ``width`` output channels that belongs to member ``m``."""
    size = width // members
    return slice(m * size, (m + 1) * size)


def _copy(target: torch.Tensor, source: torch.Tensor, what: str) -> None:
    if target.shape != source.shape:
        raise ValueError(f"{what}: shape {tuple(source.shape)} in the file, {tuple(target.shape)} in the module")
    with torch.no_grad():
        target.copy_(source)


def one_hot(sequence: str) -> torch.Tensor:
    """``[4, L]`` float one-hot of A, C, G, T (SpliceAI's encoding; N and anything else is all zeros)."""
    codes = np.frombuffer(sequence.upper().encode("ascii"), dtype=np.uint8)
    table = np.full(256, 4, dtype=np.int64)
    for i, base in enumerate(b"ACGT"):
        table[base] = i
    eye = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])
    return torch.from_numpy(eye[table[codes]].T.copy())
