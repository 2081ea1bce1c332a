"""Docking throughput: ligands per minute with 1 dock worker and with 2, through the real screen CLI.

Each dock worker runs one Vina search at a time on one thread (``--processes 1 --vina-cpu 1``), so
on this 2-core machine 2 workers can at best double the rate. The library is a fixed set of
drug-like SMILES docked into the 1o3f example pocket (box = its ligand + 4 Å), exhaustiveness 8 by
default, COMPASS scoring off (that is the affinity service's throughput, not docking's). With 2
workers the same ligands are docked twice, so both phases do the same work per ligand. The
receptor is prepared once before timing (the cache every worker shares). Printed: ligands/min per
worker, the 2-worker rate, their ratio (goal ≥ 1.8), and the load average around each phase: on
a shared machine other people's work lowers both rates and the ratio.

    python -m bench.docking_throughput [--per-worker 4] [--exhaustiveness 8]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

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


def screen(registry: str, library: list[str], out: Path, concurrency: int, exhaustiveness: int) -> dict:
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
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=python_env(), cwd=REPO, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"screen failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.docking_throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-worker", type=int, default=4, help="ligands per worker in each phase")
    parser.add_argument("--exhaustiveness", type=int, default=8)
    args = parser.parse_args(argv)
    if not 1 <= args.per_worker <= len(LIBRARY):
        parser.error(f"--per-worker must be between 1 and {len(LIBRARY)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below: stop every process
    tmp = Path(tempfile.mkdtemp(prefix="dock-bench-"))
    registry = start_registry(tmp)
    procs: list[Proc] = [registry]
    env_flags = ("--registry", registry.base_url, "--state-dir", str(tmp / "state"), "--processes", "1")
    try:
        procs += start_workers(tmp, 1, *env_flags, module="docking.worker", name="dock")
        wait_registered(registry, 1)
        screen(registry.base_url, LIBRARY[:1], tmp / "warm", 1, 1)  # receptor prepared once, imports warm
        print(f"cpus {os.cpu_count()}, exhaustiveness {args.exhaustiveness}, {args.per_worker} ligands per worker")
        load0 = load_average()
        one = screen(registry.base_url, LIBRARY[: args.per_worker], tmp / "one", 1, args.exhaustiveness)
        print(
            f"1 worker : {one['ligands_per_min']:.2f} ligands/min ({one['succeeded']} docked, "
            f"{one['elapsed_s']:.0f} s; load average before {load0}, after {load_average()})",
            flush=True,
        )
        procs += start_workers(tmp, 1, *env_flags, module="docking.worker", name="dock", first=1)
        wait_registered(registry, 2)
        screen(registry.base_url, LIBRARY[:2], tmp / "warm2", 2, 1)
        load1 = load_average()
        two = screen(registry.base_url, LIBRARY[: args.per_worker] * 2, tmp / "two", 2, args.exhaustiveness)
        print(
            f"2 workers: {two['ligands_per_min']:.2f} ligands/min ({two['succeeded']} docked, "
            f"{two['elapsed_s']:.0f} s; load average before {load1}, after {load_average()})",
            flush=True,
        )
        ratio = two["ligands_per_min"] / one["ligands_per_min"] if one["ligands_per_min"] else float("nan")
        print(f"ratio 2 workers / 1 worker: {ratio:.2f} (goal ≥ 1.8; the same ligands, each docked twice with 2)")
    finally:
        stop_all(list(reversed(procs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
