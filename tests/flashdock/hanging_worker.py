"""A worker that hangs: it registers, keeps a valid heartbeat, accepts TCP connections and never answers.

The worst case for a page: the registry says the instance is passing, connecting succeeds at
once, and every request then waits for its read timeout. Run as a real process by the tests:

    python -m tests.flashdock.hanging_worker --registry URL --token T --service compass-lite --capability affinity

It prints one JSON line (``event``, ``instance_id``, ``base_url``, ``pid``) once registered, and
deregisters on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import threading

import requests

API = "/api/v1/services"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.flashdock.hanging_worker", description=__doc__)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--service", default="compass-lite")
    parser.add_argument("--capability", action="append", default=[])
    parser.add_argument("--heartbeat-interval", type=float, default=0.5)
    args = parser.parse_args(argv)

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    port = server.getsockname()[1]
    held: list[socket.socket] = []

    def accept_forever() -> None:
        while True:
            conn, _ = server.accept()
            held.append(conn)  # read nothing, answer nothing, close nothing

    threading.Thread(target=accept_forever, daemon=True).start()

    auth = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    body = {
        "service_name": args.service,
        "host": "127.0.0.1",
        "port": port,
        "version": "hanging",
        "metadata": {"capabilities": args.capability, "models": [args.service], "pid": os.getpid()},
    }

    def register() -> str:
        resp = requests.post(args.registry + API + "/register", json=body, headers=auth, timeout=5)
        resp.raise_for_status()
        return resp.json()["data"]["instance_id"]

    instance_id = register()
    base_url = f"http://127.0.0.1:{port}"
    line = {"event": "registered", "instance_id": instance_id, "base_url": base_url, "pid": os.getpid()}
    print(json.dumps(line), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(args.heartbeat_interval):
        try:
            beat = {"status": "passing", "load": {"inflight": len(held), "queued": 0}}
            resp = requests.put(f"{args.registry}{API}/{instance_id}/heartbeat", json=beat, headers=auth, timeout=2)
            if resp.status_code == 404:
                instance_id = register()
        except requests.RequestException:
            continue  # the registry is away: keep trying, as a worker does
    with contextlib.suppress(requests.RequestException):  # the registry may be gone first
        requests.delete(f"{args.registry}{API}/{instance_id}", headers=auth, timeout=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
