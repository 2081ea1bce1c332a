"""A launcher killed with SIGKILL takes its replicas along: each gets SIGTERM, drains and deregisters."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from tests.integration.test_launcher import alive, current_pids, registered_pids
from tests.support import TOKEN, Proc, spawn, wait_until

# ``registry``: the token-secured registry of tests/integration/conftest.py (start_registry + REGISTRY_FLAGS).
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux-only")


def api_deregistrations(registry: Proc) -> float:
    text = requests.get(f"{registry.base_url}/metrics", timeout=2).text
    match = re.search(r'^registry_deregistrations_total\{reason="api"\} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_replicas_of_a_killed_launcher_drain_and_leave_the_registry(registry: Proc, tmp_path: Path) -> None:
    launcher = spawn(
        ["-m", "services.worker.launch", "echo", "--replicas", "2", "--registry", registry.base_url,
         "--token", TOKEN, "--grace-period", "20"],
        tmp_path / "launcher.log", "",
    )  # fmt: skip
    pids: set[int] = set()
    try:
        pids = set(wait_until(lambda: len(current_pids(launcher)) == 2 and current_pids(launcher), timeout=30).values())
        wait_until(lambda: pids <= set(registered_pids(registry)), timeout=20, what="both replicas registered")
        for pid in pids:  # the worker itself runs under the replica's pid (the trampoline execs it)
            assert "services.worker.echo" in " ".join(psutil.Process(pid).cmdline())
        before = api_deregistrations(registry)

        launcher.kill9()

        wait_until(lambda: not any(alive(pid) for pid in pids), timeout=30, what="both replicas to exit")
        wait_until(lambda: not pids & set(registered_pids(registry)), timeout=10, what="both instances gone")
        # They left by draining (DELETE), not by missing heartbeats until the registry expired them.
        assert api_deregistrations(registry) - before == 2
        assert "received SIGTERM: draining" in launcher.log()
    finally:
        launcher.stop()
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_trampoline_execs_the_worker_command_unchanged() -> None:
    from services.worker.launch import with_parent_death_signal

    command = [sys.executable, "-c", "import sys; print(sys.argv[1:])", "a b", "--x=1"]
    wrapped = with_parent_death_signal(command)
    assert wrapped[-len(command) :] == command
    out = subprocess.run(wrapped, capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "['a b', '--x=1']" and "warning" not in out.stderr


def test_the_trampoline_does_not_start_a_worker_for_a_launcher_already_gone() -> None:
    from services.worker.launch import with_parent_death_signal

    # The child's parent is this test, not pid 1: as if the launcher had died before arming the signal.
    wrapped = with_parent_death_signal([sys.executable, "-c", "print('started')"], parent_pid=1)
    out = subprocess.run(wrapped, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout == ""
