"""``python -m gateway``: the agent gateway process (flags: ``--help``)."""

from gateway.worker import main

if __name__ == "__main__":
    raise SystemExit(main())
