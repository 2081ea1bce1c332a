"""The load-generator side of ``bench/registry_load.py``; always runs in its own process.

``python -m bench.loadgen ROLE`` reads one JSON config line on stdin, writes JSON event lines on
stdout, and takes later commands (the measurement window) on stdin; EOF on stdin ends it.

Roles:
  heartbeats  register N instances, then beat each one every ``interval`` seconds, open-loop:
              instance phases are spread uniformly, a beat is sent at its scheduled time whether
              or not earlier ones were answered, and latency is measured from the scheduled time
              (no coordinated omission) as well as from the moment the request hit the socket.
  clients     discovery clients in a loop plus blocking-query watchers (etcd: watch streams).
  compare     closed-loop comparison of the two client designs (asyncio protocol pool vs
              http.client in threads): requests/s and client CPU per request.

Modules:
  __main__  the CLI: picks the role, reads the config line
  http      the raw asyncio HTTP/1.1 client (http_request, HttpConn, connect, Pool)
  targets   the registry's API and etcd's HTTP/JSON gateway for the same simulated fleet
  control   the stdin control channel and the measurement window
  stats     percentiles, JSON event lines, error kinds
  beats     role ``heartbeats``
  watchers  the blocking-query / watch-stream state shared by the targets and role ``clients``
  clients   role ``clients``
  compare   role ``compare``
"""
