"""Helpers for tests that run real processes on loopback: free ports, polling, process control."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests

REPO = Path(__file__).resolve().parents[1]
# The token-secured, fast-heartbeat registry of the `registry` fixture (tests/integration/conftest.py).
TOKEN = "integration-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REGISTRY_FLAGS = ("--heartbeat-interval", "0.5", "--critical-after", "3", "--deregister-after", "5", "--token", TOKEN)
T = TypeVar("T")


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(fn: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> T:
    """Poll ``fn`` until it returns a truthy value, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else "")
    )


@dataclass
class Proc:
    """A child process we started, with its log file and base URL."""

    popen: subprocess.Popen
    base_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def stop_all(procs: list[Proc]) -> None:
    """SIGTERM every process at once (each drains on its own), then wait for each."""
    for proc in procs:
        if proc.popen.poll() is None:
            proc.popen.terminate()
    for proc in procs:
        proc.stop()


def own_ipv4() -> str | None:
    """A non-loopback IPv4 address of this machine, or None when it has none."""
    import psutil

    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family == socket.AF_INET and not addr.address.startswith("127."):
                return addr.address
    return None


def python_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def spawn(args: list[str], log_path: Path, base_url: str, env: dict[str, str] | None = None) -> Proc:
    """Start ``python args...`` with output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
    popen = subprocess.Popen(
        [sys.executable, *args], stdout=handle, stderr=subprocess.STDOUT, env=env or python_env(), cwd=REPO
    )
    return Proc(popen, base_url, log_path)


def start_registry(
    tmp_path: Path, *flags: str, port: int | None = None, db: Path | None = None, name: str = "registry"
) -> Proc:
    """Start a real registry process and wait until /health answers."""
    port = port or free_port()
    db = db or tmp_path / f"{name}.db"
    args = ["-m", "services.registry", "--host", "127.0.0.1", "--port", str(port), "--db", str(db), *flags]
    proc = spawn(args, tmp_path / f"{name}.log", f"http://127.0.0.1:{port}")
    wait_for_http(proc, "/health")
    return proc


def wait_for_http(proc: Proc, path: str = "/health", timeout: float = 20.0) -> None:
    def up() -> bool:
        if proc.popen.poll() is not None:
            raise AssertionError(f"process exited with {proc.popen.returncode}:\n{proc.log()}")
        try:
            return requests.get(proc.base_url + path, timeout=1).status_code < 500
        except requests.ConnectionError:
            return False

    wait_until(up, timeout=timeout, what=f"{proc.base_url}{path}")


def read_json_line(proc: Proc, key: str, timeout: float = 20.0) -> dict[str, Any]:
    """The first JSON line in the process log that has ``key``."""

    def find() -> dict[str, Any] | None:
        if proc.popen.poll() is not None:
            raise AssertionError(f"process exited with {proc.popen.returncode}:\n{proc.log()}")
        for line in proc.log().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if key in obj:
                    return obj
        return None

    return wait_until(find, timeout=timeout, what=f"a JSON line with {key!r}")


def start_workers(
    log_dir: Path, count: int, *flags: str, module: str = "services.worker.echo", name: str = "echo", first: int = 0
) -> list[Proc]:
    """Start ``count`` workers with ``--port 0`` at once (imports overlap) and wait for every ready line.

    ``module`` may be a ``-c`` program instead: pass ``module=("-c", source)``.
    """
    head = list(module) if isinstance(module, tuple) else ["-m", module]
    procs = [
        spawn([*head, "--port", "0", *flags], log_dir / f"{name}{first + i}.log", base_url="") for i in range(count)
    ]
    for proc in procs:
        proc.base_url = read_json_line(proc, "event")["base_url"]
    return procs


# The shared data folder beside the checkout (DESIGN "Data"); tests that need it skip when absent.
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the calling test with a clear message when it is absent."""
    import pytest

    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} is absent (DESIGN 'Data': ../shared/data beside the checkout)")
    return path
