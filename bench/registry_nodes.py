"""Node beats against per-instance heartbeats, on the same registry, in the same run (issue 20).

For each store (``sqlite``: one registry; ``etcd``: two registry replicas over one local etcd) and
each mode, this starts a fresh registry, registers the fleet, arms blocking-query watchers
(``bench.loadgen`` role ``clients``) and measures a window:

* ``node``: INSTANCES instances on INSTANCES/PER_NODE simulated nodes; each node sends
  ``PUT /api/v1/nodes/{node}/heartbeat`` every INTERVAL seconds (a full beat every 6th, else one
  changed instance), phases spread uniformly, open-loop (latency from the scheduled time);
* ``instance``: the same instances, each beating ``PUT /services/{id}/heartbeat`` itself.

During the window some units die (node mode: whole nodes stop beating; instance mode: the same
number of instances stop). A monitor polls ``GET /services?status=critical`` on every replica
twice a second: a **false expiry** is an instance seen critical that nobody killed; a **missed
expiry** is a killed instance not seen critical by its last beat + TTL + one interval + 2 s.
Also printed: beat latency percentiles, errors, registry (and etcd) CPU, and on etcd the writes
per beat read from etcd's own counters (raft proposals, puts, txns).

    .venv/bin/python bench/registry_nodes.py --quick                 # scaled down: 2,000 on 200 nodes
    .venv/bin/python bench/registry_nodes.py                         # 10,000 on 1,000 nodes, 200 watchers
    .venv/bin/python bench/registry_nodes.py --stores sqlite --modes node
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.loadgen.control import Control, sleep_until  # noqa: E402
from bench.loadgen.http import Pool  # noqa: E402
from bench.loadgen.stats import emit, err_kind, summarize  # noqa: E402
from bench.registry_load import (  # noqa: E402
    CRITICAL_AFTER,
    Child,
    CpuProbe,
    loadgen,
    python_env,
    start_etcd,
    start_registry,
    stop_all_children,
)

PER_SERVICE = 100  # as bench.loadgen's fleet, so its watchers watch these services
FULL_EVERY = 6
SLOW_S = 0.05  # the goal's p99: beats slower than this are counted per second of the window


def _request(method: str, path: str, host: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


# ----------------------------------------------------------------------------------------------
# the generator (a child process: python bench/registry_nodes.py --gen, config on stdin)
# ----------------------------------------------------------------------------------------------


def service(i: int) -> str:
    return f"bench-{i // PER_SERVICE:03d}"


def instance_id(i: int) -> str:
    return f"{service(i)}-{i:05d}"


def node_headers(node: int) -> dict[str, str]:
    return {"X-Node": f"bn-{node:05d}", "X-Node-Secret": f"bench-node-secret-{node:05d}"}


async def generator(cfg: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    ctl = Control(loop)
    n, per_node, interval, mode = cfg["instances"], cfg["per_node"], cfg["interval"], cfg["mode"]
    pools = [Pool("127.0.0.1", port, cfg["connections"]) for port in cfg["ports"]]
    for pool in pools:
        await pool.start()
    hosts = [f"127.0.0.1:{port}" for port in cfg["ports"]]
    rng = random.Random(cfg.get("seed", 1))
    nodes = (n + per_node - 1) // per_node
    units = nodes if mode == "node" else n

    # registration, through every replica in turn
    sem = asyncio.Semaphore(64)
    reg_errors: dict[str, int] = {}

    async def register(i: int) -> None:
        doc = {
            "instance_id": instance_id(i),
            "service_name": service(i),
            "host": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            "port": 9000,
            "version": "1.0.0",
            "metadata": {"capabilities": ["bench"], "pid": 10000 + i},
        }
        headers = node_headers(i // per_node) if mode == "node" else None
        k = i % len(pools)
        async with sem:
            status, _, err, _ = await pools[k].request(
                _request("POST", "/api/v1/services/register", hosts[k], json.dumps(doc).encode(), headers)
            )
        if err is not None or status not in (200, 201):
            kind = err_kind(status, err)
            reg_errors[kind] = reg_errors.get(kind, 0) + 1
        else:
            registered[i] = 1

    lat: list[float] = []
    late: list[float] = []  # how late the generator itself sent each beat (its own share of the latency)
    slow: dict[int, int] = {}
    errors: dict[str, int] = {}
    unknown = 0
    window = [float("inf"), float("inf")]
    dead: set[int] = set()
    last_ok: dict[int, float] = {}
    beats = [0] * units
    registered = bytearray(n)  # beats start with registration: an instance is renewed once it exists

    def beat_bytes(u: int, k: int) -> bytes:
        host = hosts[k]
        if mode == "instance":
            body = b'{"load":{"inflight":%d}}' % rng.randrange(4)
            return _request("PUT", f"/api/v1/services/{instance_id(u)}/heartbeat", host, body)
        # Like the agent: every member is listed (it knows its replicas before they register).
        members = range(u * per_node, min(n, (u + 1) * per_node))
        full = beats[u] % FULL_EVERY == 0
        listed = members if full else [rng.choice(members)]  # a partial beat: the one whose load moved
        items = [
            {"instance_id": instance_id(i), "status": "passing", "load": {"inflight": rng.randrange(4)}} for i in listed
        ]
        body = json.dumps({"instances": items, "full": full}, separators=(",", ":")).encode()
        return _request("PUT", f"/api/v1/nodes/bn-{u:05d}/heartbeat", host, body, node_headers(u))

    def callback(due: float, u: int) -> Any:
        in_window = window[0] <= due < window[1]

        def done(status: int, body: bytes, err: BaseException | None, _t_sent: float) -> None:
            nonlocal unknown
            if err is not None or status != 200:
                if in_window:
                    kind = err_kind(status, err)
                    errors[kind] = errors.get(kind, 0) + 1
                return
            last_ok[u] = time.monotonic()  # when the registry had renewed it: an expiry counts from here
            if in_window:
                lat.append(time.monotonic() - due)
                if lat[-1] > SLOW_S:  # when in the window the slow ones were due (which second)
                    second = int(due - window[0])
                    slow[second] = slow.get(second, 0) + 1
                if mode == "node":
                    unknown += len(json.loads(body)["data"]["unknown"])

        return done

    async def schedule() -> None:
        order = list(range(units))
        rng.shuffle(order)
        step = interval / units
        base = time.monotonic() + 0.05
        j = k = 0
        while True:
            due = base + k * interval + j * step
            now = time.monotonic()
            while due <= now:
                u = order[j]
                if u not in dead and (registered[u] if mode == "instance" else registered[u * per_node]):
                    if window[0] <= due < window[1]:
                        late.append(now - due)
                    slot = (beats[u] + u) % len(pools)
                    pools[slot].submit(beat_bytes(u, slot), callback(due, u))
                    beats[u] += 1
                j += 1
                if j == units:
                    j, k = 0, k + 1
                due = base + k * interval + j * step
            await asyncio.sleep(due - now)

    task = loop.create_task(schedule())
    t_reg = time.monotonic()
    await asyncio.gather(*(register(i) for i in range(n)))
    emit("registered", seconds=round(time.monotonic() - t_reg, 2), errors=reg_errors, reg_end=time.monotonic())
    window[0], window[1] = await ctl.window()
    await sleep_until(window[0])
    # Kills land in the first third of the window, so each one's deadline passes while we still run.
    kill_at = sorted(window[0] + rng.uniform(0, (window[1] - window[0]) / 3) for _ in range(cfg["kills"]))
    victims = rng.sample(range(units), cfg["kills"])
    killed: list[dict[str, Any]] = []
    for at, u in zip(kill_at, victims, strict=True):
        await sleep_until(at)
        dead.add(u)
        ids = (
            [instance_id(i) for i in range(u * per_node, min(n, (u + 1) * per_node))]
            if mode == "node"
            else [instance_id(u)]
        )
        killed.append({"ids": ids, "unit": u})
    await sleep_until(window[1] + 3.0)  # let in-window beats answer
    emit("killed", units=[{"ids": k["ids"], "last_beat": last_ok.get(k["unit"], window[0])} for k in killed])
    emit(
        "result",
        mode=mode,
        units=units,
        beats_per_s_target=round(units / interval, 1),
        ok=len(lat),
        ok_per_s=round(len(lat) / (window[1] - window[0]), 1),
        errors=errors,
        unknown=unknown,
        latency=summarize(lat),
        send_lateness=summarize(late),
        slow_by_second=dict(sorted(slow.items())),
    )
    await asyncio.Event().wait()  # keep the fleet alive until the parent closes our stdin
    task.cancel()


# ----------------------------------------------------------------------------------------------
# the parent: targets, monitor, figures
# ----------------------------------------------------------------------------------------------


class Monitor(threading.Thread):
    """When each instance was first seen critical on any replica (two polls a second)."""

    def __init__(self, ports: list[int]) -> None:
        super().__init__(daemon=True)
        self.ports = ports
        self.first_critical: dict[str, float] = {}
        self.polls = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            for port in self.ports:
                url = f"http://127.0.0.1:{port}/api/v1/services?status=critical"
                with contextlib.suppress(OSError, ValueError, KeyError):
                    with urllib.request.urlopen(url, timeout=5) as resp:
                        data = json.loads(resp.read())["data"]["instances"]
                    now = time.monotonic()
                    for inst in data:
                        self.first_critical.setdefault(inst["instance_id"], now)
            self.polls += 1


def etcd_counters(port: int) -> dict[str, float]:
    names = ("etcd_server_proposals_committed_total", "etcd_mvcc_put_total", "etcd_mvcc_txn_total")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for name in names:
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        out[name] = float(match.group(1)) if match else 0.0
    return out


def route_histogram(port: int, route: str) -> dict[float, float]:
    """Cumulative bucket counts of the registry's own request duration for ``route`` (in-app time)."""
    return histogram(port, "registry_http_request_duration_seconds", f'route="{route}"')


def histogram(port: int, name: str, labels: str = "") -> dict[float, float]:
    """Cumulative bucket counts of histogram ``name`` (``labels``: its other labels, as exposed) at ``port``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    if labels:
        pattern = rf'^{name}_bucket{{(?:le="([^"]+)",{re.escape(labels)}|{re.escape(labels)},le="([^"]+)")}} (\S+)$'
    else:
        pattern = rf'^{name}_bucket{{le="([^"]+)"}} (\S+)$'
    out = {}
    for match in re.finditer(pattern, text, re.M):
        le = next(g for g in match.groups()[:-1] if g is not None) if labels else match.group(1)
        out[float(le)] = float(match.groups()[-1])
    return out


def gc_pauses(ports: list[int]) -> list[dict[float, float]]:
    """Each replica's full (generation 2) collections, as a histogram of their pauses."""
    return [histogram(port, "registry_gc_pause_seconds", 'generation="2"') for port in ports]


def histogram_pcts(before: list[dict[float, float]], after: list[dict[float, float]]) -> dict[str, Any]:
    """The bucket bound under which 50/99/99.9 % (and all) of the window's observations fell (all replicas)."""
    total: dict[float, float] = {}
    for b, a in zip(before, after, strict=True):
        for le, n in a.items():
            total[le] = total.get(le, 0.0) + n - b.get(le, 0.0)
    bounds = sorted(total)
    count = total.get(float("inf"), 0.0)
    out: dict[str, Any] = {"n": int(count)}
    for name, q in (("p50_le_ms", 0.5), ("p99_le_ms", 0.99), ("p999_le_ms", 0.999), ("max_le_ms", 1.0)):
        le = next((b for b in bounds if count and total[b] >= q * count), None)
        out[name] = None if le is None or le == float("inf") else round(le * 1000, 1)
    return out


def run_one(args: argparse.Namespace, store: str, mode: str, log: Any) -> dict[str, Any]:
    tag = f"[{store} {mode}]"
    tmp = Path(tempfile.mkdtemp(prefix=f"registry-nodes-{store}-{mode}-"))
    children: list[Child] = []
    try:
        pids: dict[str, int] = {}
        ports: list[int] = []
        etcd_port = None
        if store == "etcd":
            etcd, etcd_port = start_etcd(tmp, args.etcd_bin)
            children.append(etcd)
            pids["etcd"] = etcd.pid
            for r in range(2):
                sub = tmp / f"r{r}"
                sub.mkdir()
                reg, port = start_registry(
                    sub, args.interval, ["--store", "etcd", "--etcd-endpoints", f"http://127.0.0.1:{etcd_port}"]
                )
                children.append(reg)
                pids[f"registry{r}"] = reg.pid
                ports.append(port)
        else:
            reg, port = start_registry(tmp, args.interval, [])
            children.append(reg)
            pids["registry"] = reg.pid
            ports.append(port)
        cfg = {
            "mode": mode,
            "ports": ports,
            "instances": args.instances,
            "per_node": args.per_node,
            "interval": args.interval,
            "connections": args.connections,
            "kills": args.kills if mode == "node" else args.kills * args.per_node,
        }
        gen = Child("gen", [sys.executable, str(Path(__file__)), "--gen"], tmp / "gen.log", python_env())
        children.append(gen)
        gen.send(cfg)
        reg_ev = gen.wait_event("registered", args.register_timeout)
        log(f"{tag} registered {args.instances} in {reg_ev['seconds']}s, errors {reg_ev['errors'] or 0}")
        watchers = []
        for k, port in enumerate(ports):
            share = args.watchers // len(ports) + (1 if k < args.watchers % len(ports) else 0)
            common = {"target": "registry", "host": "127.0.0.1", "port": port, "instances": args.instances}
            common |= {"per_service": PER_SERVICE, "lease_ttl": 0.0, "watchers": share, "watch_wait_s": 30.0}
            watchers.append(loadgen("clients", tmp, common | {"discovery_clients": 1, "discovery_pause_s": 0.5}))
            watchers[-1].name = f"clients{k}"
        children.extend(watchers)
        for child in watchers:
            child.wait_event("ready", 60)
        t0 = max(reg_ev["reg_end"] + args.interval, time.monotonic()) + 1.0
        t1 = t0 + args.duration
        for child in (gen, *watchers):
            child.send({"cmd": "window", "t0": t0, "t1": t1})
        monitor = Monitor(ports)
        monitor.start()
        time.sleep(max(0.0, t0 - time.monotonic()))
        log(f"{tag} measuring for {args.duration:g}s with {args.watchers} watchers")
        route = "/api/v1/nodes/<node>/heartbeat" if mode == "node" else "/api/v1/services/<iid:instance_id>/heartbeat"
        hist0 = [route_histogram(port, route) for port in ports]
        gc0 = gc_pauses(ports)
        fsync0 = [histogram(etcd_port, "etcd_disk_wal_fsync_duration_seconds")] if etcd_port else []
        probe = CpuProbe(pids)
        probe.begin()
        etcd0 = etcd_counters(etcd_port) if etcd_port else None
        while time.monotonic() < t1:
            time.sleep(min(1.0, max(0.0, t1 - time.monotonic())))
            probe.sample()
        usage = probe.end()
        in_app = histogram_pcts(hist0, [route_histogram(port, route) for port in ports])
        gc_full = histogram_pcts(gc0, gc_pauses(ports))
        fsync1 = [histogram(etcd_port, "etcd_disk_wal_fsync_duration_seconds")] if etcd_port else []
        fsync = histogram_pcts(fsync0, fsync1) if etcd_port else {}
        etcd1 = etcd_counters(etcd_port) if etcd_port else None
        killed = gen.wait_event("killed", 60)
        result = gen.wait_event("result", 60)
        clients = [c.wait_event("result", 60) for c in watchers]
        ttl = CRITICAL_AFTER * args.interval
        grace = ttl + args.interval + 2.0
        last_deadline = max((u["last_beat"] + grace for u in killed["units"]), default=time.monotonic())
        time.sleep(max(0.0, last_deadline - time.monotonic() + 1.0))
        monitor.stop.set()
        monitor.join(timeout=10)
        dead_ids = {iid: u["last_beat"] for u in killed["units"] for iid in u["ids"]}
        false_expiries = sorted(i for i in monitor.first_critical if i not in dead_ids)
        missed = sorted(i for i, last in dead_ids.items() if monitor.first_critical.get(i, float("inf")) > last + grace)
        detect = [monitor.first_critical[i] - last for i, last in dead_ids.items() if i in monitor.first_critical]
        out = {
            "store": store,
            "mode": mode,
            "beats": result,
            "killed_instances": len(dead_ids),
            "false_expiries": len(false_expiries),
            "false_examples": false_expiries[:5],
            "missed_expiries": len(missed),
            "detection_s": summarize(detect),
            "in_app_latency": in_app,
            "gc_full_pauses": gc_full,
            "etcd_wal_fsync": fsync,
            "watch_answers": sum(c.get("watch_answers", 0) for c in clients),
            "watch_errors": sum(sum(c.get("watch_errors", {}).values()) for c in clients),
            "clients": clients,
            **usage,
        }
        if etcd0 and etcd1:
            beats = max(1, result["ok"])
            out["etcd_per_beat"] = {k: round((etcd1[k] - etcd0[k]) / beats, 3) for k in etcd0}
            out["etcd_per_s"] = {k: round((etcd1[k] - etcd0[k]) / args.duration, 1) for k in etcd0}
        return out
    finally:
        for child in reversed(children):
            child.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\nstore   mode      beats/s (target)  p50 ms   p99 ms   errors  unknown  killed  false  missed  "
          "detect p50/max s  registry CPU %  etcd CPU %")  # fmt: skip
    for r in rows:
        if "error" in r:
            print(f"{r['store']:<7} {r['mode']:<9} failed: {r['error']}")
            continue
        b, lat = r["beats"], r["beats"]["latency"]
        cpu = sum(v for k, v in r.items() if k.startswith("registry") and k.endswith("_cpu_pct"))
        det = r["detection_s"]
        print(
            f"{r['store']:<7} {r['mode']:<9} {b['ok_per_s']:>7} ({b['beats_per_s_target']:>6})  "
            f"{lat.get('p50_ms', '-'):>7}  {lat.get('p99_ms', '-'):>7}  {sum(b['errors'].values()):>6}  "
            f"{b['unknown']:>7}  {r['killed_instances']:>6}  {r['false_expiries']:>5}  {r['missed_expiries']:>6}  "
            f"{det.get('p50_ms', 0) / 1000:>6.2f}/{det.get('max_ms', 0) / 1000:<6.2f}     {cpu:>8.1f}  "
            f"{r.get('etcd_cpu_pct', '-'):>10}"
        )
    for r in (r for r in rows if "error" not in r):
        late, app = r["beats"].get("send_lateness", {}), r.get("in_app_latency", {})
        print(
            f"{r['store']} {r['mode']}: generator sent late p99 {late.get('p99_ms', '-')} ms; registry in-app "
            f"p50/p99/p999 <= {app.get('p50_le_ms')}/{app.get('p99_le_ms')}/{app.get('p999_le_ms')} ms "
            f"(its histogram buckets; the rest of a beat's latency is queueing, the network and the machine)"
        )
        print(f"  beats over {SLOW_S * 1000:g} ms by second of the window: {r['beats'].get('slow_by_second')}")
        gcp, fs = r.get("gc_full_pauses", {}), r.get("etcd_wal_fsync", {})
        print(
            f"  registry full GCs in the window: {gcp.get('n')} (all replicas), pause p50/max <= "
            f"{gcp.get('p50_le_ms')}/{gcp.get('max_le_ms')} ms"
            + (f"; etcd WAL fsync p99/max <= {fs.get('p99_le_ms')}/{fs.get('max_le_ms')} ms" if fs else "")
        )
    for r in rows:
        if "etcd_per_beat" in r:
            print(f"etcd writes per beat ({r['mode']}): {r['etcd_per_beat']}  per second: {r['etcd_per_s']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="2,000 instances on 200 nodes, 50 watchers, 20 s")
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--per-node", type=int, default=10)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument(
        "--kills", type=int, default=5, help="nodes killed in the window (instance mode: as many instances)"
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--register-timeout", type=float, default=600.0)
    parser.add_argument("--stores", default="sqlite,etcd")
    parser.add_argument("--modes", default="node,instance")
    parser.add_argument("--etcd-bin", default=shutil.which("etcd") or "etcd")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args(argv)
    if args.gen:
        asyncio.run(generator(json.loads(sys.stdin.readline())))
        return 0
    if args.quick:
        args.instances, args.watchers, args.duration = 2_000, 50, 20.0

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    rows = []
    try:
        for store in args.stores.split(","):
            for mode in args.modes.split(","):
                try:
                    rows.append(run_one(args, store, mode, log))
                except RuntimeError as exc:  # e.g. a saturated mode never finishes registering: keep the others
                    rows.append({"store": store, "mode": mode, "error": str(exc).splitlines()[0]})
                log(f"[{store} {mode}] {json.dumps({k: v for k, v in rows[-1].items() if k != 'clients'})}")
    finally:
        stop_all_children()
    head = (
        f"{args.instances} instances, {args.per_node} per node, beat every {args.interval:g}s, {args.watchers} watchers"
    )
    print(f"\n{head}, {args.duration:g}s window (a shared machine: other tenants' load included)")
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
