"""Peak memory of the product run (scripts/run.sh): the whole process tree's RSS, sampled until every worker
kind the run starts is passing in the registry and FlashDock answers, then a while longer.

    python bench/fleet_memory.py [--profile full|small] [--settle 20]

Prints the peak of the summed RSS and each process's own peak. The run uses free ports and a
throw-away registry database, so it can run beside a live fleet. Nothing is asserted: the figure
goes into README.md ("Memory").
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_rss(root: psutil.Process) -> dict[str, float]:
    """RSS in MB of ``root`` and every descendant, keyed by a readable name."""
    out: dict[str, float] = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            cmd = proc.cmdline()
            name = " ".join(a for a in cmd[1:4] if not a.startswith("/")) or proc.name()
            out[f"{proc.pid} {name[:70]}"] = proc.memory_info().rss / 1e6
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def fleet_kinds(profile: str) -> list[str]:
    """The kinds scripts/run.sh starts (the same rule: every launcher kind but echo and hf; small: two)."""
    sys.path.insert(0, str(REPO))
    from services.worker.launch import KINDS, module_available

    kinds = [k for k, (module, _) in KINDS.items() if k not in ("echo", "hf") and module_available(module)]
    return [k for k in kinds if profile != "small" or k in ("compass-lite", "codon")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=["full", "small"], default="full")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to keep sampling once all are up")
    parser.add_argument("--timeout", type=float, default=420.0)
    args = parser.parse_args()
    registry_port, ui_port = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="fleet-memory-")
    env = {**os.environ, "FLASHDOCK_PROFILE": args.profile, "REGISTRY_PORT": str(registry_port),
           "FLASHDOCK_PORT": str(ui_port), "REGISTRY_DB": f"{tmp}/registry.db"}  # fmt: skip
    run = subprocess.Popen(["bash", "scripts/run.sh"], cwd=REPO, env=env, start_new_session=True, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    root = psutil.Process(run.pid)
    peak_total, peaks, kinds = 0.0, {}, ""
    deadline, settled_at = time.monotonic() + args.timeout, None
    registry = f"http://127.0.0.1:{registry_port}/api/v1/services"
    try:
        while time.monotonic() < deadline:
            rss = tree_rss(root)
            peak_total = max(peak_total, sum(rss.values()))
            for name, mb in rss.items():
                peaks[name] = max(peaks.get(name, 0.0), mb)
            if settled_at is None:
                try:
                    found = requests.get(registry, timeout=1).json()["data"]["instances"]
                except (requests.RequestException, ValueError, KeyError):
                    found = []
                names = {i["service_name"] for i in found if i["status"] == "passing"}
                want = len(fleet_kinds(args.profile))
                if len(names) >= want and requests.get(f"http://127.0.0.1:{ui_port}/_stcore/health", timeout=1).ok:
                    kinds = ", ".join(sorted(names))
                    settled_at = time.monotonic()
            elif time.monotonic() - settled_at > args.settle:
                break
            time.sleep(0.5)
    finally:
        os.killpg(run.pid, signal.SIGINT)
        try:
            run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
    if settled_at is None:
        print(f"the fleet did not come up within {args.timeout:g} s", file=sys.stderr)
    print(f"profile {args.profile}: services passing: {kinds or 'not all'}")
    print(f"peak RSS of the whole run (sum over processes): {peak_total:.0f} MB")
    for name, mb in sorted(peaks.items(), key=lambda kv: -kv[1])[:20]:
        print(f"  {mb:7.0f} MB  {name}")
    return 0 if settled_at is not None else 1


if __name__ == "__main__":
    sys.exit(main())
