"""Docking throughput: ligands per minute with 1 dock worker busy and with 2, through the real screen CLI.

Each dock worker runs one Vina search at a time on one thread (``--processes 1``), so on this
2-core machine 2 workers can at best double the rate. The library is a fixed set of drug-like
SMILES docked into the 1o3f example pocket (box = its ligand + 4 Å), exhaustiveness 8 by default,
COMPASS scoring off (that is the affinity service's throughput, not docking's). Two dock workers
run throughout; "1 worker" is the screen with one ligand in flight (one worker busy at a time),
"2 workers" the screen with two in flight and the same ligands twice, so both phases do the same
work per ligand. The receptor is prepared once before timing (the cache every worker shares).

The baseline, in the same run: the same Vina work with no mesh at all, one bare process and then
two at once. Its ratio is what this machine's two cores give Vina (on a shared virtual machine,
the host's load moves it between runs); the mesh's efficiency is its ratio over that one. The
phases alternate for ``--rounds`` rounds, so a slow spell on the host lands on both sides, and
the medians are printed with every round's figures. Goal: mesh ratio ≥ 1.8.

    python -m bench.docking_throughput [--per-worker 6] [--rounds 3] [--exhaustiveness 8] [--balancer p2c]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from rdkit import Chem

from docking import box as bx
from docking import engine
from docking import ligand as lig
from docking import receptor as rec
from tests.support import REPO, Proc, python_env, start_registry, start_workers, stop_all, wait_until

EXAMPLE = REPO / "examples" / "complexes" / "1o3f"
# Drug-like molecules, 1-6 rotatable bonds (amidines, anilines, sulfonamides, amides): a typical screen's size range.
LIBRARY = [
    "NC(=N)c1ccc(cc1)C(=O)Nc1ccccc1",
    "NC(=N)c1ccc2cc(ccc2c1)O",
    "Cc1ccc(cc1)S(=O)(=O)Nc1ccccc1",
    "NC(=N)c1cccc(c1)OCc1ccccc1",
    "O=C(Nc1ccccc1)c1ccc(O)cc1",
    "NC(=N)c1ccc(cc1)CCN",
    "Nc1ccc(cc1)S(=O)(=O)N",
    "CC(=O)Nc1ccc(cc1)C(N)=N",
    "NC(=N)c1ccc(cc1)Oc1ccccc1",
    "COc1ccc(cc1)C(=O)NCc1ccccc1",
    "NCc1ccc(cc1)C(=O)Nc1ccc(cc1)C(N)=N",
    "Oc1ccc(cc1)-c1ccc(cc1)C(N)=N",
]


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def wait_registered(registry: Proc, count: int) -> None:
    """Until ``count`` dock workers are passing (a worker registers only once its docking processes started)."""

    def passing() -> bool:
        resp = requests.get(registry.base_url + "/api/v1/services", params={"name": "dock"}, timeout=5)
        return sum(i["status"] == "passing" for i in resp.json()["data"]["instances"]) >= count

    wait_until(passing, timeout=300, interval=0.5, what=f"{count} dock worker(s) in the registry")


def _bare_vina(ligands: list[str], cache: Path, exhaustiveness: int, start: Any, seconds: mp.Queue) -> None:
    """Dock ``ligands`` one after another in this process, as a worker's Vina child does; put the seconds taken."""
    receptor = rec.prepare((EXAMPLE / "1o3f_pocket.pdb").read_text(), rec.ReceptorOptions(), cache)
    ref = Chem.MolFromMolFile(str(EXAMPLE / "1o3f_ligand.sdf"))
    box = bx.around(ref.GetConformer().GetPositions(), 4.0)
    warm = engine.DockParams(exhaustiveness=1)
    engine.dock(receptor, lig.from_smiles(ligands[0]), box, warm)  # grid maps first, as in the warmed workers
    start.wait()  # every process starts timing together
    started = time.perf_counter()
    for smiles in ligands:
        engine.dock(receptor, lig.from_smiles(smiles), box, engine.DockParams(exhaustiveness=exhaustiveness))
    seconds.put(time.perf_counter() - started)


def bare_ratio(ligands: list[str], cache: Path, exhaustiveness: int) -> tuple[float, float, float]:
    """Seconds for ``ligands`` in one bare process, in each of two at once (the slower), and the rate ratio."""
    ctx = mp.get_context("spawn")  # a clean interpreter per process, as the workers' children are
    queue = ctx.Queue()

    def run(copies: int) -> float:
        start = ctx.Barrier(copies)
        job = (ligands, cache, exhaustiveness, start, queue)
        procs = [ctx.Process(target=_bare_vina, args=job) for _ in range(copies)]
        for proc in procs:
            proc.start()
        times = [queue.get(timeout=3600) for _ in procs]
        for proc in procs:
            proc.join()
        return max(times)

    one, two = run(1), run(2)
    return one, two, 2 * one / two


def screen(
    registry: str, library: list[str], out: Path, concurrency: int, exhaustiveness: int, balancer: str | None = None
) -> dict:
    lib = out.with_suffix(".smi")
    lib.write_text("".join(f"{s} L{i}\n" for i, s in enumerate(library)))
    cmd = [
        sys.executable,
        "-m",
        "docking.screen",
        "--registry",
        registry,
        "--protein",
        str(EXAMPLE / "1o3f_pocket.pdb"),
        "--ligands",
        str(lib),
        "--box-ligand",
        str(EXAMPLE / "1o3f_ligand.sdf"),
        "--out",
        str(out),
        "--concurrency",
        str(concurrency),
        "--exhaustiveness",
        str(exhaustiveness),
        "--no-score",
        "--no-progress",
        *(["--balancer", balancer] if balancer else []),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=python_env(), cwd=REPO, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"screen failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.docking_throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-worker", type=int, default=6, help="ligands per worker in each phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of every phase")
    parser.add_argument("--exhaustiveness", type=int, default=8)
    parser.add_argument("--balancer", default=None, help="the screen's --balancer (default: the screen's own)")
    args = parser.parse_args(argv)
    if not 1 <= args.per_worker <= len(LIBRARY):
        parser.error(f"--per-worker must be between 1 and {len(LIBRARY)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below: stop every process
    tmp = Path(tempfile.mkdtemp(prefix="dock-bench-"))
    registry = start_registry(tmp)
    procs: list[Proc] = [registry]
    env_flags = ("--registry", registry.base_url, "--state-dir", str(tmp / "state"), "--processes", "1")
    ligands = LIBRARY[: args.per_worker]
    bare_ratios, mesh_ratios = [], []
    try:
        procs += start_workers(tmp, 2, *env_flags, module="docking.worker", name="dock")
        wait_registered(registry, 2)
        screen(registry.base_url, LIBRARY[:2], tmp / "warm", 2, 1)  # receptor prepared once, both workers warm
        print(f"cpus {os.cpu_count()}, exhaustiveness {args.exhaustiveness}, {args.per_worker} ligands per worker")
        for r in range(args.rounds):
            load = load_average()
            one_s, two_s, bare = bare_ratio(ligands, tmp / "bare", args.exhaustiveness)
            one = screen(registry.base_url, ligands, tmp / f"one{r}", 1, args.exhaustiveness, args.balancer)
            two = screen(registry.base_url, ligands * 2, tmp / f"two{r}", 2, args.exhaustiveness, args.balancer)
            mesh = two["ligands_per_min"] / one["ligands_per_min"] if one["ligands_per_min"] else float("nan")
            bare_ratios.append(bare)
            mesh_ratios.append(mesh)
            print(
                f"round {r + 1}: bare Vina 1 process {one_s:.0f} s, 2 at once {two_s:.0f} s (ratio {bare:.2f}); "
                f"mesh 1 worker {one['ligands_per_min']:.2f}/min ({one['elapsed_s']:.0f} s), "
                f"2 workers {two['ligands_per_min']:.2f}/min ({two['elapsed_s']:.0f} s): ratio {mesh:.2f}; "
                f"failed {one['failed'] + two['failed']}; load average before {load}, after {load_average()}",
                flush=True,
            )
        bare, mesh = statistics.median(bare_ratios), statistics.median(mesh_ratios)
        print(f"median ratio, bare Vina 2 processes / 1: {bare:.2f} (this machine's ceiling for the same work)")
        print(f"median ratio, mesh 2 workers / 1: {mesh:.2f} (goal ≥ 1.8)")
        print(f"mesh efficiency: {mesh:.2f} / {bare:.2f} = {mesh / bare:.2f}")
    finally:
        stop_all(list(reversed(procs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
