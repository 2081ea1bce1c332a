"""Training throughput of the COMPASS ViSNet: complexes per second, CPU (and CUDA when present).

One training step = collate a batch, forward, MSE loss, backward, gradient clipping, AdamW step:
what :mod:`compass.train` does per step. Data: synthetic complexes sized like real 8 Å crops
(~30 ligand + ~250 protein heavy atoms; the FEP set averages about that), or ``--data`` (a data
root or a ``.pt`` cache). Configs: ``small`` (64 channels, 3 layers) and ``default`` (the
ViSNetConfig defaults: 128 channels, 6 layers). Prints figures; never asserts.

    python -m bench.compass_train [--quick] [--data PATH] [--device cpu|cuda|all] [--threads N]
                                  [--config small|default|all] [--steps N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from compass.data.graph import ComplexGraph
from compass.model.visnet import CompassViSNet, ViSNetConfig
from compass.train.plan import OptimSpec
from compass.train.schedule import build_optimizer
from compass.train.synthetic import synthetic_set
from compass.train.trainer import amp_settings

CONFIGS = {
    "small": {"hidden_channels": 64, "num_layers": 3, "num_heads": 4, "num_rbf": 32, "cutoff": 5.0},
    "default": {},
}


def load_graphs(path: str | None, n: int) -> list[ComplexGraph]:
    if path is None:
        graphs, _ = synthetic_set(n, ligand_atoms=(20, 40), protein_atoms=(200, 300), seed=0)
        return graphs
    from compass.data import load_root

    graphs = load_root(path, progress=False).graphs
    return (graphs * (n // max(len(graphs), 1) + 1))[:n]


def time_steps(
    graphs: list[ComplexGraph], config: dict, batch_size: int, device: torch.device, steps: int, amp: str
) -> tuple[float, float]:
    """(complexes per second, seconds per step) over ``steps`` timed steps after 2 warm-up steps."""
    from torch_geometric.data import Batch

    ys = torch.tensor([g.y for g in graphs])
    torch.manual_seed(0)
    model = CompassViSNet(ViSNetConfig(**config, y_mean=float(ys.mean()), y_std=float(ys.std()))).to(device)
    optimizer, _ = build_optimizer(model, OptimSpec(lr=1e-4), total_steps=1000)
    use_amp, dtype, _ = amp_settings(amp, device)
    data = [g.to_data() for g in graphs]
    times = []
    for step in range(steps + 2):
        chunk = [data[(step * batch_size + i) % len(data)] for i in range(batch_size)]
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        batch = Batch.from_data_list(chunk).to(device)
        with torch.autocast(device.type, dtype=dtype, enabled=use_amp):
            pred = model(batch)
        loss = ((pred.float() - batch.y) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= 2:
            times.append(time.perf_counter() - t0)
    per_step = statistics.median(times)
    return batch_size / per_step, per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 timed steps per row, small config only on CPU")
    parser.add_argument("--data", help="data root or .pt cache (default: synthetic complexes)")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--steps", type=int, help="timed steps per row (default 5, --quick 2)")
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default="all", help="model size(s) to time")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (2 if args.quick else 5)
    graphs = load_graphs(args.data, 64)
    atoms = statistics.fmean(g.num_atoms for g in graphs)
    ligand = statistics.fmean(g.num_ligand_atoms for g in graphs)
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    print(f"data: {'synthetic' if args.data is None else args.data}, {atoms:.0f} atoms/complex ({ligand:.0f} ligand)")
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, {steps} timed steps per row")
    print(f"{'device':<8}{'config':<9}{'params':>9}{'batch':>7}{'amp':>6}{'s/step':>9}{'complexes/s':>13}")
    for device in devices:
        configs = list(CONFIGS) if args.config == "all" else [args.config]
        if args.quick and device.type == "cpu" and args.config == "all":
            configs = ["small"]
        amps = ["off", "on"] if device.type == "cuda" else ["off"]
        for name in configs:
            params = sum(p.numel() for p in CompassViSNet(ViSNetConfig(**CONFIGS[name])).parameters())
            for batch_size in (8, 32):
                for amp in amps:
                    rate, per_step = time_steps(graphs, CONFIGS[name], batch_size, device, steps, amp)
                    print(
                        f"{device.type:<8}{name:<9}{params:>9,}{batch_size:>7}{amp:>6}{per_step:>9.3f}{rate:>13.1f}",
                        flush=True,
                    )
    if not torch.cuda.is_available():
        print("CUDA: not available on this machine")


if __name__ == "__main__":
    main()
