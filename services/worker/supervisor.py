"""Keeps N replicas of one worker command alive: restart on crash, give up on a crash loop, stop cleanly.

The launcher (:mod:`services.worker.launch`) builds the command; this module only runs
processes. Each child prints one JSON ``ready`` line on stdout; the supervisor turns it into
a ``replica`` line on its own stdout and forwards any other child output to stderr.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

log = logging.getLogger(__name__)

_POLL_S = 0.1


@dataclass(frozen=True)
class RestartPolicy:
    """Exponential restart delay for children that die young; a long-lived child starts over.

    A crash within ``stable_after_s`` of starting is a fast crash; after ``max_fast_crashes``
    fast crashes in a row the replica is abandoned rather than restarted forever.
    """

    base_s: float = 0.5
    multiplier: float = 2.0
    cap_s: float = 30.0
    stable_after_s: float = 30.0
    max_fast_crashes: int = 5

    def after_crash(self, uptime_s: float, fast_crashes: int) -> tuple[int, float | None]:
        """The new fast-crash count and the delay before restarting (None: give up)."""
        count = 1 if uptime_s >= self.stable_after_s else fast_crashes + 1
        if count > self.max_fast_crashes:
            return count, None
        return count, min(self.cap_s, self.base_s * self.multiplier ** (count - 1))


class Replica:
    """One slot of the replica set and the process currently filling it."""

    def __init__(self, index: int, command: Sequence[str], env: dict[str, str] | None) -> None:
        self.index = index
        self.command = list(command)
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.pid: int | None = None
        self.started_at = 0.0
        self.ready_info: dict[str, Any] | None = None
        self.fast_crashes = 0
        self.restarts = 0
        self.restart_at: float | None = None
        self.done = False
        self.gave_up = False

    def spawn(self, now: float, on_ready: Callable[[Replica, dict[str, Any]], None], label: str) -> None:
        """Start the child (argv list, no shell) and a thread that reads its stdout."""
        proc = subprocess.Popen(  # an argv list from a fixed module map, never a shell string
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=None,
            env=self.env,
            text=True,
            errors="replace",
            bufsize=1,
        )
        self.proc, self.pid, self.started_at = proc, proc.pid, now
        self.ready_info, self.restart_at = None, None
        threading.Thread(
            target=self._pump, args=(proc, on_ready, label), name=f"replica-{self.index}", daemon=True
        ).start()

    def _pump(
        self, proc: subprocess.Popen[str], on_ready: Callable[[Replica, dict[str, Any]], None], label: str
    ) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if self.ready_info is None and proc is self.proc and line.lstrip().startswith("{"):
                try:
                    obj = json.loads(line)
                except ValueError:
                    obj = None
                if isinstance(obj, dict) and obj.get("event") == "ready":
                    self.ready_info = obj
                    on_ready(self, obj)
                    continue
            sys.stderr.write(f"[{label}#{self.index}] {line}")
        proc.stdout.close()


class Supervisor:
    """Runs ``replicas`` copies of ``command``; :meth:`run` returns when every child is gone."""

    def __init__(
        self,
        kind: str,
        command: Sequence[str],
        replicas: int,
        *,
        env: dict[str, str] | None = None,
        policy: RestartPolicy | None = None,
        grace_s: float = 40.0,
        startup_timeout_s: float = 300.0,
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if replicas < 1:
            raise ValueError("at least one replica")
        self.kind = kind
        self.replicas = [Replica(i, command, env) for i in range(replicas)]
        self.policy = policy or RestartPolicy()
        self.grace_s = grace_s
        self.startup_timeout_s = startup_timeout_s
        self._out = out or sys.stdout
        self._out_lock = threading.Lock()
        self._clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._kill_at: float | None = None
        self._killed = False

    def request_stop(self) -> None:
        """Begin a clean stop (safe in a signal handler: it only sets flags)."""
        self._stop.set()
        self._wake.set()

    def _announce(self, replica: Replica, ready: dict[str, Any]) -> None:
        line = {
            "event": "replica",
            "kind": self.kind,
            "replica": replica.index,
            "pid": ready.get("pid", replica.pid),
            "port": ready.get("port"),
            "base_url": ready.get("base_url"),
            "restarts": replica.restarts,
        }
        if ready.get("instance_id"):
            line["instance_id"] = ready["instance_id"]
        with self._out_lock:
            try:
                self._out.write(json.dumps(line) + "\n")
                self._out.flush()
            except OSError as exc:  # whoever read our stdout went away; keep supervising
                log.warning("cannot print the replica line: %s", exc)

    def _spawn(self, replica: Replica, now: float) -> None:
        try:
            replica.spawn(now, self._announce, self.kind)
        except OSError as exc:
            log.error("cannot start replica %d: %s; giving up on it", replica.index, exc)
            replica.done = replica.gave_up = True

    def run(self) -> int:
        """Start all replicas and supervise them; 0 after a requested stop, 1 if replicas were abandoned."""
        now = self._clock()
        for replica in self.replicas:
            self._spawn(replica, now)
        while not all(r.done for r in self.replicas):
            now = self._clock()
            if self._stop.is_set() and self._kill_at is None:
                self._terminate_all(now)
            for replica in self.replicas:
                self._tick(replica, now)
            if self._kill_at is not None and now >= self._kill_at and not self._killed:
                self._kill_all()
            self._wake.wait(_POLL_S)
            self._wake.clear()
        return 1 if any(r.gave_up for r in self.replicas) and not self._stop.is_set() else 0

    def _tick(self, replica: Replica, now: float) -> None:
        if replica.done:
            return
        if replica.proc is None:
            if self._stop.is_set():
                replica.done = True
            elif replica.restart_at is not None and now >= replica.restart_at:
                replica.restarts += 1
                log.info("restarting replica %d (restart %d)", replica.index, replica.restarts)
                self._spawn(replica, now)
            return
        code = replica.proc.poll()
        if code is None:
            if (
                replica.ready_info is None
                and not self._stop.is_set()
                and now - replica.started_at > self.startup_timeout_s
            ):
                log.error(
                    "replica %d (pid %d) not ready after %.0fs; killing it",
                    replica.index,
                    replica.pid,
                    self.startup_timeout_s,
                )
                replica.proc.kill()
            return
        replica.proc = None
        if self._stop.is_set():
            log.info("replica %d (pid %d) exited with code %d", replica.index, replica.pid, code)
            replica.done = True
        elif code == 0:
            log.info("replica %d (pid %d) exited cleanly; not restarting it", replica.index, replica.pid)
            replica.done = True
        else:
            self._after_crash(replica, code, now)

    def _after_crash(self, replica: Replica, code: int, now: float) -> None:
        uptime = now - replica.started_at
        replica.fast_crashes, delay = self.policy.after_crash(uptime, replica.fast_crashes)
        how = _describe_exit(code)
        if delay is None:
            log.error(
                "replica %d (pid %d) %s after %.1fs; %d fast crashes in a row: crash loop, giving up on it",
                replica.index,
                replica.pid,
                how,
                uptime,
                replica.fast_crashes,
            )
            replica.done = replica.gave_up = True
            return
        log.warning(
            "replica %d (pid %d) %s after %.1fs; restarting in %.1fs", replica.index, replica.pid, how, uptime, delay
        )
        replica.restart_at = now + delay

    def _terminate_all(self, now: float) -> None:
        """SIGTERM lets each worker drain (maintenance, finish, deregister); SIGKILL follows after the grace."""
        self._kill_at = now + self.grace_s
        live = [r for r in self.replicas if r.proc is not None and r.proc.poll() is None]
        log.info("stopping %d replica(s); SIGKILL after %.0fs", len(live), self.grace_s)
        for replica in live:
            replica.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]  # ignores an already-reaped child

    def _kill_all(self) -> None:
        self._killed = True
        for replica in self.replicas:
            if replica.proc is not None and replica.proc.poll() is None:
                log.warning(
                    "replica %d (pid %d) still running after the grace period; SIGKILL", replica.index, replica.pid
                )
                replica.proc.kill()


def _describe_exit(code: int) -> str:
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"
