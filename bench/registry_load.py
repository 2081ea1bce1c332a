"""Registry under heartbeat load, side by side with etcd (leases + keep-alives) under the same load.

For each scenario (``INSTANCESxINTERVAL``) and each target, this starts the target on 127.0.0.1
with a temporary data dir, then two load processes (``bench/loadgen/``). Targets: ``registry``
(our registry on its SQLite store), ``registry-etcd`` (our registry on ``--store etcd`` over a
local etcd: ``--store etcd`` adds it beside the SQLite run) and ``etcd`` (etcd itself, driven
with its own API as the yardstick):

* the heartbeat generator registers every instance (etcd: a lease per instance plus a key put
  with it), then beats each instance every INTERVAL seconds, open-loop with phases spread
  uniformly (registry: ``PUT /api/v1/services/{id}/heartbeat``; etcd: ``POST /v3/lease/keepalive``),
  plus a little status churn (registry: a heartbeat carrying ``status``; etcd: a key put);
* the clients process runs discovery clients in a loop (registry: ``GET /services?name=S``;
  etcd: a prefix range) and blocking-query watchers (registry: ``index=N&wait=…``; etcd: watch
  streams on the service prefix).

After a warm-up the measurement window starts; the target's CPU and RSS come from psutil on its
pid. Figures are printed (never pass/fail): heartbeats/s achieved vs target, heartbeat latency
from the scheduled send time and from the actual send, discovery latency, blocking-query
answers, errors, CPU %, RSS; then registry/etcd ratios.

    .venv/bin/python bench/registry_load.py                       # 1000x2 and 10000x5, 30 s each
    .venv/bin/python bench/registry_load.py --quick               # smoke test
    .venv/bin/python bench/registry_load.py --store etcd          # the registry on SQLite and on etcd
    .venv/bin/python bench/registry_load.py --scenarios 10000x5 --targets registry --profile-dir /tmp/prof
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from services.common.parent_death import arm_parent_death_signal

REPO = Path(__file__).resolve().parents[1]
CRITICAL_AFTER = 3
DEREGISTER_AFTER = 60.0


# ----------------------------------------------------------------------------------------------
# child processes (all ours, all on loopback, all stopped on exit, even on Ctrl-C)
# ----------------------------------------------------------------------------------------------


class Child:
    """A subprocess whose stdout JSON lines arrive on a queue; stderr goes to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=REPO,
            env=env,
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
            preexec_fn=arm_parent_death_signal,  # SIGTERM the child if this process dies: nothing left behind
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        _CHILDREN.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self) -> None:
        for raw in self.popen.stdout:  # type: ignore[union-attr]
            line = raw.decode(errors="replace").strip()
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    self.events.put(json.loads(line))

    def send(self, obj: dict[str, Any]) -> None:
        self.popen.stdin.write((json.dumps(obj) + "\n").encode())  # type: ignore[union-attr]
        self.popen.stdin.flush()  # type: ignore[union-attr]

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_event(self, name: str, timeout: float, on_event: Any = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.name}: no {name!r} event within {timeout:.0f}s\n{self.log_tail()}")
            try:
                ev = self.events.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.popen.poll() is not None and not self._reader.is_alive() and self.events.empty():
                    # Exited, and every line it wrote has been read (the reader ends at EOF): a
                    # process that exits right after its last line must not lose that line.
                    raise RuntimeError(
                        f"{self.name} exited with {self.popen.returncode} before {name!r}\n{self.log_tail()}"
                    ) from None
                continue
            if ev.get("event") == name:
                return ev
            if on_event is not None:
                on_event(ev)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()  # type: ignore[union-attr]
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)
        self._log.close()
        if self in _CHILDREN:
            _CHILDREN.remove(self)


_CHILDREN: list[Child] = []


def stop_all_children() -> None:
    for child in reversed(list(_CHILDREN)):
        with contextlib.suppress(Exception):
            child.stop()


def python_env(root: Path = REPO) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(root), str(REPO), *filter(None, [env.get("PYTHONPATH")])]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------------------------
# targets
# ----------------------------------------------------------------------------------------------


def start_registry(tmp: Path, interval: float, extra: list[str], root: Path = REPO) -> tuple[Child, int]:
    argv = [sys.executable, "-m", "services.registry", "--host", "127.0.0.1", "--port", "0"]
    argv += ["--db", str(tmp / "registry.db"), "--heartbeat-interval", f"{interval:g}"]
    argv += ["--critical-after", str(CRITICAL_AFTER), "--deregister-after", f"{DEREGISTER_AFTER:g}"]
    # Every simulated worker and client connects from this one host: lift the per-address cap
    # (a scratch copy from before the cap existed has no such flag).
    if "client_connection_limit" in (root / "services" / "common" / "settings.py").read_text():
        argv += ["--client-connection-limit", "0"]
    argv += extra
    child = Child("registry", argv, tmp / "registry.log", python_env(root))
    ready = child.wait_event("ready", 30)
    return child, int(ready["port"])


def registry_commit() -> str:
    """HEAD of the checkout (read-only git), '+dirty' when services/ has local changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        paths = ["services/registry", "services/common"]
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return "?"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else "?"


def etcd_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    return out.splitlines()[0].strip() if out else "?"


def start_etcd(tmp: Path, binary: str) -> tuple[Child, int]:
    client, peer = free_port(), free_port()
    argv = [binary, "--name", "bench", "--data-dir", str(tmp / "etcd-data")]
    argv += [
        "--listen-client-urls",
        f"http://127.0.0.1:{client}",
        "--advertise-client-urls",
        f"http://127.0.0.1:{client}",
    ]
    argv += [
        "--listen-peer-urls",
        f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls",
        f"http://127.0.0.1:{peer}",
    ]
    argv += ["--initial-cluster", f"bench=http://127.0.0.1:{peer}", "--logger", "zap", "--log-level", "warn"]
    child = Child("etcd", argv, tmp / "etcd.log")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            raise RuntimeError(f"etcd exited with {child.popen.returncode}\n{child.log_tail()}")
        with (
            contextlib.suppress(OSError, ValueError),
            urllib.request.urlopen(f"http://127.0.0.1:{client}/health", timeout=1) as resp,
        ):
            if json.loads(resp.read()).get("health") == "true":
                return child, client
        time.sleep(0.1)
    raise RuntimeError(f"etcd did not become healthy\n{child.log_tail()}")


def change_counter(target: str, port: int) -> int | None:
    """The registry's change index (GET /health) or etcd's revision: how many state changes a window saw."""
    try:
        if target == "registry":
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                return int(json.loads(resp.read())["index"])
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v3/kv/range", data=b'{"key":"AA=="}', method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(json.loads(resp.read())["header"]["revision"])
    except (OSError, ValueError, KeyError):
        return None


def loadgen(role: str, tmp: Path, cfg: dict[str, Any]) -> Child:
    child = Child(role, [sys.executable, "-m", "bench.loadgen", role], tmp / f"{role}.log", python_env())
    child.send(cfg)
    return child


# ----------------------------------------------------------------------------------------------
# one run: a scenario against a target
# ----------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    instances: int
    interval: float

    @property
    def label(self) -> str:
        return f"{self.instances}x{self.interval:g}"

    @classmethod
    def parse(cls, text: str) -> Scenario:
        n, _, every = text.lower().partition("x")
        try:
            scenario = cls(int(n), float(every))
        except ValueError:
            raise argparse.ArgumentTypeError(f"scenario {text!r} must look like 10000x5") from None
        if scenario.instances < 1 or scenario.interval <= 0:
            raise argparse.ArgumentTypeError(f"scenario {text!r}: instances ≥ 1 and interval > 0")
        return scenario


@dataclass
class CpuProbe:
    """CPU seconds and RSS of a set of pids, sampled over the measurement window."""

    pids: dict[str, int]
    start: dict[str, float] = field(default_factory=dict)
    rss_max: dict[str, int] = field(default_factory=dict)
    sys_start: Any = None

    def _procs(self) -> dict[str, psutil.Process]:
        out = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(psutil.Error):
                out[name] = psutil.Process(pid)
        return out

    def begin(self) -> None:
        self.t0 = time.monotonic()
        self.sys_start = psutil.cpu_times()
        for name, proc in self._procs().items():
            times = proc.cpu_times()
            self.start[name] = times.user + times.system
        self.sample()

    def sample(self) -> None:
        for name, proc in self._procs().items():
            with contextlib.suppress(psutil.Error):
                self.rss_max[name] = max(self.rss_max.get(name, 0), proc.memory_info().rss)

    def end(self) -> dict[str, Any]:
        self.sample()
        wall = time.monotonic() - self.t0
        out: dict[str, Any] = {}
        for name, proc in self._procs().items():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                out[f"{name}_cpu_pct"] = round((times.user + times.system - self.start[name]) / wall * 100, 1)
                out[f"{name}_rss_mb"] = round(proc.memory_info().rss / 2**20, 1)
                out[f"{name}_rss_max_mb"] = round(self.rss_max.get(name, 0) / 2**20, 1)
        now = psutil.cpu_times()
        busy = sum(now) - sum(self.sys_start) - (now.idle - self.sys_start.idle) - (now.iowait - self.sys_start.iowait)
        out["machine_cpu_pct"] = round(busy / wall * 100, 1)  # of (cores × 100)
        return out


def wait_for_quiet(limit_s: float, log: Any, busy_pct: float = 25.0) -> float:
    """Wait (bounded) until other tenants leave the machine mostly idle; returns the busy % seen last."""
    deadline = time.monotonic() + limit_s
    busy = psutil.cpu_percent(interval=1.0)
    while busy > busy_pct and time.monotonic() < deadline:
        log(f"machine busy ({busy:.0f}% of all CPUs used by other processes); waiting for it to settle")
        busy = psutil.cpu_percent(interval=3.0)
    return busy


def run_one(args: argparse.Namespace, sc: Scenario, target: str, log: Any) -> dict[str, Any]:
    tag = f"[{target} {sc.label}]"
    busy_before = wait_for_quiet(args.quiet_wait, log) if args.quiet_wait > 0 else None
    tmp = Path(tempfile.mkdtemp(prefix=f"registry-load-{target}-"))
    children: list[Child] = []
    try:
        if target == "registry":
            server, port = start_registry(tmp, sc.interval, args.registry_args, args.registry_root)
            lease_ttl = 0.0
        elif target == "registry-etcd":
            backend, etcd_port = start_etcd(tmp, args.etcd_bin)
            children.append(backend)
            store = ["--store", "etcd", "--etcd-endpoints", f"http://127.0.0.1:{etcd_port}"]
            server, port = start_registry(tmp, sc.interval, store + args.registry_args, args.registry_root)
            lease_ttl = 0.0
        else:
            server, port = start_etcd(tmp, args.etcd_bin)
            lease_ttl = CRITICAL_AFTER * sc.interval + DEREGISTER_AFTER
        children.append(server)
        log(f"{tag} {target} up on 127.0.0.1:{port} (pid {server.pid}, data in {tmp})")
        protocol = "etcd" if target == "etcd" else "registry"  # registry-etcd speaks the registry API
        common = {"target": protocol, "host": "127.0.0.1", "port": port, "instances": sc.instances}
        common |= {"per_service": args.per_service, "lease_ttl": lease_ttl}
        gen = loadgen(
            "heartbeats",
            tmp,
            common
            | {
                "interval": sc.interval,
                "connections": args.connections,
                "register_concurrency": args.register_concurrency,
                "register_timeout_s": args.register_timeout,
                "churn": args.churn,
                "drain_s": max(5.0, min(sc.interval, 10.0)),
                "raw_path": str(tmp / "heartbeats-raw.json") if args.keep else None,
            },
        )
        children.append(gen)
        reg = _wait_registration(gen, sc, tag, args.register_timeout + 60, log)
        clients = loadgen(
            "clients",
            tmp,
            common
            | {
                "watchers": args.watchers,
                "watch_wait_s": args.watch_wait,
                "discovery_clients": args.discovery_clients,
                "discovery_pause_s": args.discovery_pause,
            },
        )
        children.append(clients)
        ready = clients.wait_event("ready", 60)
        log(f"{tag} {ready['watchers']}/{args.watchers} watchers armed, {args.discovery_clients} discovery clients")
        # every instance is on its schedule one interval after the last registration
        t0 = max(reg["reg_end"] + sc.interval, time.monotonic()) + 1.0
        t1 = t0 + args.duration
        for child in (gen, clients):
            child.send({"cmd": "window", "t0": t0, "t1": t1})
        pids = {"target": server.pid, "gen": gen.pid, "clients": clients.pid}
        if target == "registry-etcd":
            pids["backend"] = children[0].pid  # etcd under the registry: its CPU is part of the cost
        probe = CpuProbe(pids)
        profiler = _start_profiler(args, server.pid, sc, target, t0, log)
        time.sleep(max(0.0, t0 - time.monotonic()))
        log(f"{tag} measuring for {args.duration:g}s")
        probe.begin()
        version0 = change_counter(protocol, port)

        def on_progress(ev: dict[str, Any]) -> None:
            if ev.get("event") == "progress":
                elapsed = ev.get("t") or time.monotonic() - t0
                log(
                    f"{tag} t={elapsed:4.0f}s beats ok {ev['ok']} ({ev['ok'] / max(elapsed, 1e-9):.0f}/s) "
                    f"errors {ev['errors']} queued {ev['queued']} | {target} RSS "
                    f"{probe.rss_max.get('target', 0) / 2**20:.0f} MB"
                )

        while time.monotonic() < t1:
            time.sleep(min(1.0, max(0.0, t1 - time.monotonic())))
            probe.sample()
            with contextlib.suppress(queue.Empty):
                while True:
                    on_progress(gen.events.get_nowait())
        usage = probe.end()
        version1 = change_counter(protocol, port)
        if version0 is not None and version1 is not None:
            usage["changes"] = version1 - version0
        hb = gen.wait_event("result", 30 + sc.interval, on_progress)
        cl = clients.wait_event("result", 30)
        if profiler is not None:
            try:
                _, err = profiler.communicate(timeout=60)
                if profiler.returncode:
                    log(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
            except subprocess.TimeoutExpired:
                profiler.kill()
                profiler.communicate()
        result = {"scenario": sc.label, "target": target, "registration": reg, "heartbeats": hb, "clients": cl}
        return result | usage | {"machine_busy_before_pct": busy_before}
    finally:
        for child in reversed(children):
            child.stop()
        if args.keep:
            log(f"{tag} kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _wait_registration(gen: Child, sc: Scenario, tag: str, timeout: float, log: Any) -> dict[str, Any]:
    bar = None
    with contextlib.suppress(ImportError):
        from tqdm import tqdm

        bar = tqdm(total=sc.instances, desc=f"{tag} registering", unit="inst", file=sys.stderr, leave=False)

    def on_event(ev: dict[str, Any]) -> None:
        if ev.get("event") == "reg_progress" and bar is not None:
            bar.update(ev["done"] - bar.n)
            bar.set_postfix(queued=ev.get("queued"), idle=ev.get("idle"), refresh=False)

    try:
        reg = gen.wait_event("registered", timeout, on_event)
    finally:
        if bar is not None:
            bar.close()
    log(
        f"{tag} registered {reg['registered']}/{sc.instances} in {reg['seconds']:.1f}s "
        f"({reg['per_s']}/s), errors {reg['errors'] or 0}"
        + (f", {reg['timed_out']} not registered within --register-timeout" if reg["timed_out"] else "")
    )
    return reg


def _start_profiler(
    args: argparse.Namespace, pid: int, sc: Scenario, target: str, t0: float, log: Any
) -> subprocess.Popen | None:
    """py-spy on the registry for the window (only with --profile-dir); never on etcd."""
    if not args.profile_dir or target != "registry":
        return None
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        log("py-spy not found (.venv/bin/pip install py-spy); not profiling")
        return None
    out = Path(args.profile_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"registry-{sc.label}"
    time.sleep(max(0.0, t0 - time.monotonic()))
    argv = [py_spy, "record", "--pid", str(pid), "--duration", str(int(args.duration)), "--rate", "100", "--gil"]
    argv += ["--nonblocking", "--threads", "--format", "raw", "-o", f"{stem}.txt"]
    log(f"profiling the registry with py-spy into {stem}.txt")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# ----------------------------------------------------------------------------------------------
# client comparison
# ----------------------------------------------------------------------------------------------


def compare_clients(args: argparse.Namespace, targets: list[str], log: Any) -> list[dict[str, Any]]:
    rows = []
    for target in targets:
        tmp = Path(tempfile.mkdtemp(prefix=f"registry-load-compare-{target}-"))
        try:
            server, port = (
                start_registry(tmp, 5.0, args.registry_args, args.registry_root)
                if target == "registry"
                else start_etcd(tmp, args.etcd_bin)
            )
            cfg = {"target": target, "host": "127.0.0.1", "port": port, "instances": 256, "per_service": 64}
            cfg |= {"lease_ttl": 120, "connections": args.connections, "seconds": 5.0}
            child = loadgen("compare", tmp, cfg)
            result = child.wait_event("result", 120)
            child.stop()
            server.stop()
            for row in result["rows"]:
                rows.append({"target": target, **row})
                log(f"[compare {target}] {row}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _row(r: dict[str, Any]) -> dict[str, Any]:
    hb, cl, reg = r["heartbeats"], r["clients"], r["registration"]
    lat, sent, disc = hb["latency_from_scheduled"], hb["latency_from_send"], cl["discovery"]
    errors = sum(hb["errors"].values()) + hb["unanswered"] + sum(cl["discovery_errors"].values())
    errors += sum(cl["watch_errors"].values()) + sum(hb["churn"]["errors"].values())
    return {
        "scenario": r["scenario"],
        "target": r["target"],
        "registered": f"{reg['registered']}/{r['heartbeats']['instances']}",
        "reg/s": reg["per_s"],
        "target/s": hb["target_per_s"],
        "beats/s": hb["achieved_per_s"],
        "hb p50": lat.get("p50_ms"),
        "hb p99": lat.get("p99_ms"),
        "hb p99.9": lat.get("p999_ms"),
        "hb max": lat.get("max_ms"),
        "p99 send": sent.get("p99_ms"),
        "disc/s": cl["discovery_per_s"],
        "disc p50": disc.get("p50_ms"),
        "disc p99": disc.get("p99_ms"),
        "watch ans": cl["watch_answers"],
        "changes": r.get("changes"),
        "errors": errors,
        "CPU %": r.get("target_cpu_pct"),
        "etcd CPU %": r.get("backend_cpu_pct"),
        "RSS MB": r.get("target_rss_max_mb"),
        "gen CPU %": r.get("gen_cpu_pct"),
        "clients CPU %": r.get("clients_cpu_pct"),
        "other CPU %": _other_cpu(r),
    }


def _other_cpu(r: dict[str, Any]) -> float | None:
    """Machine CPU not used by the target or our load processes (other tenants, kernel, this script)."""
    parts = [r.get(k) for k in ("machine_cpu_pct", "target_cpu_pct", "gen_cpu_pct", "clients_cpu_pct")]
    if any(p is None for p in parts):
        return None
    parts.append(r.get("backend_cpu_pct") or 0.0)
    return round(max(0.0, parts[0] - sum(parts[1:])), 1)


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no results)"
    cols = list(rows[0])
    cells = [[_fmt(row[c]) for c in cols] for row in rows]
    widths = [max(len(c), *(len(cell[i]) for cell in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join(lines)


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each pair measured in the same run: registry/etcd, and the etcd store against SQLite."""
    out = []
    by = {(r["scenario"], r["target"]): _row(r) for r in results}
    pairs = (("registry", "etcd", "reg/etcd"), ("registry-etcd", "registry", "etcd-store/sqlite"))
    for scenario in dict.fromkeys(r["scenario"] for r in results):
        for num_name, den_name, label in pairs:
            num, den = by.get((scenario, num_name)), by.get((scenario, den_name))
            if not num or not den:
                continue

            def ratio(key: str, num: dict = num, den: dict = den) -> float | None:
                a, b = num.get(key), den.get(key)
                return round(a / b, 2) if a is not None and b else None

            out.append(
                {
                    "scenario": scenario,
                    "ratio": label,
                    "throughput": ratio("beats/s"),
                    "hb p50": ratio("hb p50"),
                    "hb p99": ratio("hb p99"),
                    "disc p99": ratio("disc p99"),
                    "CPU": ratio("CPU %"),
                    "RSS": ratio("RSS MB"),
                }
            )
    return out


def goal_line(results: list[dict[str, Any]]) -> str | None:
    for r in results:
        if r["target"] == "registry" and r["scenario"] == "10000x5":
            row = _row(r)
            met = row["beats/s"] >= 0.99 * row["target/s"] and (row["hb p99"] or math.inf) < 50 and row["errors"] == 0
            return (
                f"goal (10000x5: 2000 beats/s, heartbeat p99 < 50 ms from the scheduled time, no errors): "
                f"{'MET' if met else 'NOT MET'} — {row['beats/s']} beats/s, p99 {row['hb p99']} ms, "
                f"errors {row['errors']}"
            )
    return None


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/registry_load.py",
        description="Heartbeat load on the registry and on etcd (leases + keep-alives) with the same load generator.",
    )
    p.add_argument("--scenarios", help="comma-separated INSTANCESxINTERVAL (default 1000x2,10000x5)")
    p.add_argument("--duration", type=float, help="measurement window per scenario and target, seconds (default 30)")
    p.add_argument("--watchers", type=int, help="blocking-query watchers (default 200)")
    p.add_argument("--discovery-clients", type=int, help="discovery clients in a loop (default 4)")
    p.add_argument("--discovery-pause", type=float, default=0.1, help="pause between a client's discoveries, s")
    p.add_argument("--watch-wait", type=float, default=30.0, help="blocking-query wait, s (default %(default)s)")
    p.add_argument("--per-service", type=int, help="instances per service name (default 100)")
    p.add_argument("--churn", type=float, default=1.0, help="status changes per second (wake watchers)")
    p.add_argument("--connections", type=int, default=64, help="persistent connections of the generator")
    p.add_argument("--register-concurrency", type=int, default=16, help="registrations in flight (default 16)")
    p.add_argument("--register-timeout", type=float, default=120.0, help="bound on the registration phase, s")
    p.add_argument("--targets", default="registry,etcd", help="registry,registry-etcd,etcd (default registry,etcd)")
    p.add_argument(
        "--store",
        default="sqlite",
        help="registry store(s): sqlite, etcd or sqlite,etcd; etcd runs beside the SQLite baseline",
    )
    p.add_argument("--etcd-bin", default=shutil.which("etcd") or "etcd", help="etcd binary")
    p.add_argument(
        "--registry-root",
        type=Path,
        default=REPO,
        help="checkout whose services.registry is started (A/B runs of a scratch copy; default this repo)",
    )
    p.add_argument(
        "--registry-arg",
        dest="registry_args",
        action="append",
        default=[],
        help="extra flag for the registry, repeatable (e.g. --registry-arg=--max-watchers=512)",
    )
    p.add_argument("--quick", action="store_true", help="smoke test: 200x1 for 5 s, 20 watchers, 2 discovery clients")
    p.add_argument("--compare-clients", action="store_true", help="first compare asyncio vs http.client threads")
    p.add_argument("--profile-dir", help="record the registry with py-spy (raw collapsed stacks) during each window")
    p.add_argument("--json", dest="json_out", help="also write the figures to this JSON file")
    p.add_argument(
        "--quiet-wait", type=float, default=60.0, help="wait up to this long for an idle machine before each run, s"
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary dirs (logs, db, raw heartbeat samples)")
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    quick = args.quick
    defaults = {
        "scenarios": "200x1" if quick else "1000x2,10000x5",
        "duration": 5.0 if quick else 30.0,
        "watchers": 20 if quick else 200,
        "discovery_clients": 2 if quick else 4,
        "per_service": 50 if quick else 100,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.scenario_list = [Scenario.parse(s) for s in args.scenarios.split(",") if s.strip()]
    args.target_list = [t.strip() for t in args.targets.split(",") if t.strip()]
    stores = {s.strip() for s in args.store.split(",") if s.strip()}
    if stores - {"sqlite", "etcd"}:
        raise SystemExit(f"unknown store(s): {', '.join(sorted(stores - {'sqlite', 'etcd'}))}")
    if "etcd" in stores and "registry-etcd" not in args.target_list:
        if "registry" not in args.target_list:
            args.target_list.insert(0, "registry")  # the SQLite baseline, measured in the same run
        args.target_list.insert(args.target_list.index("registry") + 1, "registry-etcd")
    bad = set(args.target_list) - {"registry", "registry-etcd", "etcd"}
    if bad:
        raise SystemExit(f"unknown target(s): {', '.join(sorted(bad))}")
    if args.duration <= 0 or args.watchers < 0 or args.discovery_clients < 0 or args.per_service < 1:
        raise SystemExit("--duration > 0, --watchers ≥ 0, --discovery-clients ≥ 0, --per-service ≥ 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = resolve(build_parser().parse_args(argv))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    targets = list(args.target_list)
    etcd_ver = None
    if {"etcd", "registry-etcd"} & set(targets):
        if not shutil.which(args.etcd_bin) and not Path(args.etcd_bin).exists():
            log(f"etcd binary {args.etcd_bin!r} not found (apt-get install etcd-server); skipping the etcd runs")
            targets = [t for t in targets if t not in ("etcd", "registry-etcd")]
        else:
            etcd_ver = etcd_version(args.etcd_bin)
    machine = {
        "registry_commit": registry_commit(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "etcd": etcd_ver,
    }
    log(f"machine: {machine}")
    results: list[dict[str, Any]] = []
    compare: list[dict[str, Any]] = []
    try:
        if args.compare_clients:
            compare = compare_clients(args, targets, log)
        for sc in args.scenario_list:
            for target in targets:
                results.append(run_one(args, sc, target, log))
    except KeyboardInterrupt:
        log("interrupted: stopping every process we started")
        return 130
    except RuntimeError as exc:  # a target or load process failed to start or died: say why, clean up
        log(f"error: {exc}")
        return 1
    finally:
        stop_all_children()

    print()
    print(
        f"registry load: {args.duration:g}s windows, {args.watchers} watchers (wait {args.watch_wait:g}s), "
        f"{args.discovery_clients} discovery clients (pause {args.discovery_pause:g}s), {args.per_service} "
        f"instances/service, churn {args.churn:g}/s, {args.connections} generator connections, "
        f"{machine['cpus']} CPUs, registry at {machine['registry_commit']}, {etcd_ver or 'etcd n/a'}"
    )
    print("latencies in ms; hb = heartbeat measured from its scheduled send time (p99 send = from the actual send)")
    print(format_table([_row(r) for r in results]))
    ratio_rows = ratios(results)
    if ratio_rows:
        print()
        print(format_table(ratio_rows))
    if compare:
        print()
        print("client comparison (closed loop, same connections):")
        print(format_table(compare))
    goal = goal_line(results)
    if goal:
        print()
        print(goal)
    if args.json_out:
        payload = {
            "config": {k: v for k, v in vars(args).items() if k not in ("scenario_list", "target_list")},
            "machine": machine,
            "results": results,
            "table": [_row(r) for r in results],
            "ratios": ratio_rows,
            "client_comparison": compare,
            "goal": goal,
        }
        Path(args.json_out).write_text(json.dumps(payload, indent=2, default=str))
        log(f"figures written to {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
