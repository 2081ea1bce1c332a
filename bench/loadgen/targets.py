"""Targets: the registry's API and etcd's HTTP/JSON gateway, for the same simulated fleet.

Each target builds the raw requests for registration, heartbeats (etcd: lease keep-alives),
status churn, discovery and blocking queries (etcd: watch streams), and judges the answers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
from typing import Any

from .http import HttpConn, Pool, http_request
from .stats import err_kind
from .watchers import Watchers


def fleet_names(instances: int, per_service: int) -> list[str]:
    return [f"bench-{s:03d}" for s in range(max(1, math.ceil(instances / per_service)))]


class Target:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.hostname, self.port = cfg["host"], cfg["port"]
        self.host = f"{self.hostname}:{self.port}"
        self.per_service = cfg["per_service"]
        self.rng = random.Random(cfg.get("seed", 1))

    def service(self, i: int) -> str:
        return f"bench-{i // self.per_service:03d}"

    def instance_id(self, i: int) -> str:
        return f"{self.service(i)}-{i:05d}"

    def doc(self, i: int, status: str = "passing") -> dict[str, Any]:
        return {
            "instance_id": self.instance_id(i),
            "service_name": self.service(i),
            "host": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            "port": 9000,
            "version": "1.0.0",
            "status": status,
            "metadata": {
                "capabilities": ["affinity", "bench"],
                "models": ["compass-lite"],
                "device": "cuda:0",
                "gpu_memory_mb": 81920,
                "pid": 10000 + i,
            },
        }


class RegistryTarget(Target):
    name = "registry"

    async def register(self, pool: Pool, i: int) -> str | None:
        body = json.dumps(self.doc(i)).encode()
        status, _, err, _ = await pool.request(http_request("POST", "/api/v1/services/register", self.host, body))
        return None if err is None and status in (200, 201) else err_kind(status, err)

    def beat(self, i: int) -> bytes:
        body = b'{"load":{"inflight":%d}}' % self.rng.randrange(4)
        return http_request("PUT", f"/api/v1/services/{self.instance_id(i)}/heartbeat", self.host, body)

    @staticmethod
    def beat_error(status: int, body: bytes) -> str | None:
        return None if status == 200 else f"http_{status}"

    @staticmethod
    def churn_error(status: int, body: bytes) -> str | None:
        return None if status == 200 else f"http_{status}"

    def churn(self, i: int, warning: bool) -> bytes:
        body = b'{"status":"%s"}' % (b"warning" if warning else b"passing")
        return http_request("PUT", f"/api/v1/services/{self.instance_id(i)}/heartbeat", self.host, body)

    def discovery(self, service: str) -> bytes:
        return http_request("GET", f"/api/v1/services?name={service}", self.host)

    @staticmethod
    def discovery_count(body: bytes) -> int:
        return len(json.loads(body)["data"]["instances"])

    async def watch(self, conn: HttpConn, service: str, w: Watchers) -> None:
        """Blocking queries in a loop: index=N&wait=…, re-armed with the index of each answer."""
        index = None
        wait = f"{w.wait_s:g}s"
        while not w.stopping:
            path = f"/api/v1/services?name={service}" + (f"&index={index}&wait={wait}" if index is not None else "")
            status, body, err, _ = await conn.request(http_request("GET", path, self.host))
            if w.stopping:
                return
            if err is not None or status != 200:
                w.error(err_kind(status, err))
                if err is not None:
                    conn = await w.reconnect(conn)
                else:
                    await asyncio.sleep(1.0)
                continue
            new_index = json.loads(body)["data"]["index"]
            if index is None:
                w.ready += 1
            else:
                w.answer(changed=new_index != index)
            index = new_index


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class EtcdTarget(Target):
    name = "etcd"
    prefix = "/compass/services/"

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.lease_ttl = math.ceil(cfg["lease_ttl"])
        self.leases: dict[int, str] = {}

    def key(self, i: int) -> str:
        return f"{self.prefix}{self.service(i)}/{self.instance_id(i)}"

    def _put(self, i: int, status: str) -> bytes:
        value = base64.b64encode(json.dumps(self.doc(i, status)).encode()).decode()
        body = json.dumps({"key": _b64(self.key(i)), "value": value, "lease": self.leases[i]}).encode()
        return http_request("POST", "/v3/kv/put", self.host, body)

    async def register(self, pool: Pool, i: int) -> str | None:
        body = json.dumps({"TTL": self.lease_ttl}).encode()
        status, answer, err, _ = await pool.request(http_request("POST", "/v3/lease/grant", self.host, body))
        if err is not None or status != 200:
            return err_kind(status, err)
        self.leases[i] = json.loads(answer)["ID"]
        status, _, err, _ = await pool.request(self._put(i, "passing"))
        return None if err is None and status == 200 else err_kind(status, err)

    def beat(self, i: int) -> bytes:
        return http_request("POST", "/v3/lease/keepalive", self.host, b'{"ID":"%s"}' % self.leases[i].encode())

    @staticmethod
    def beat_error(status: int, body: bytes) -> str | None:
        if status != 200:
            return f"http_{status}"
        # an unknown or expired lease answers 200 without a TTL
        return None if b'"TTL"' in body else "lease_not_found"

    @staticmethod
    def churn_error(status: int, body: bytes) -> str | None:
        return None if status == 200 else f"http_{status}"

    def churn(self, i: int, warning: bool) -> bytes:
        return self._put(i, "warning" if warning else "passing")

    def _range(self, service: str) -> dict[str, str]:
        return {"key": _b64(f"{self.prefix}{service}/"), "range_end": _b64(f"{self.prefix}{service}0")}

    def discovery(self, service: str) -> bytes:
        return http_request("POST", "/v3/kv/range", self.host, json.dumps(self._range(service)).encode())

    @staticmethod
    def discovery_count(body: bytes) -> int:
        kvs = json.loads(body).get("kvs", [])
        for kv in kvs:
            json.loads(base64.b64decode(kv["value"]))
        return len(kvs)

    async def watch(self, conn: HttpConn, service: str, w: Watchers) -> None:
        """One watch stream on the service's prefix; every event message counts as an answer."""
        while not w.stopping:
            pending = bytearray()

            def on_chunk(chunk: bytes, pending: bytearray = pending) -> None:
                pending.extend(chunk)
                while True:
                    i = pending.find(b"\n")
                    if i < 0:
                        return
                    line = bytes(pending[:i])
                    del pending[: i + 1]
                    if not line.strip():
                        continue
                    result = json.loads(line).get("result", {})
                    if result.get("created"):
                        w.ready += 1
                    elif result.get("events"):
                        w.answer(changed=True, count=len(result["events"]))

            body = json.dumps({"create_request": self._range(service)}).encode()
            status, _, err, _ = await conn.request(http_request("POST", "/v3/watch", self.host, body), on_chunk)
            if w.stopping:
                return
            w.error(err_kind(status, err) if err is not None or status != 200 else "stream_ended")
            conn = await w.reconnect(conn)


def make_target(cfg: dict[str, Any]) -> RegistryTarget | EtcdTarget:
    return RegistryTarget(cfg) if cfg["target"] == "registry" else EtcdTarget(cfg)
