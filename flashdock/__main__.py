"""``python -m flashdock`` (console script ``flashdock``): start the UI with safe defaults.

Loopback only unless told otherwise, and then only with a login configured (see :mod:`flashdock.auth`);
no usage statistics, no developer toolbar, no tracebacks in the browser. ``--hash-password`` prints the
``FLASHDOCK_PASSWORD_HASH`` of a password read from standard input.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click

from flashdock import settings as settings_mod
from flashdock.auth import hash_password
from services.common.addresses import is_loopback

HOME = Path(__file__).resolve().parent / "Home.py"
# Every option that would otherwise call out, show developer chrome or leak details.
SAFE_FLAGS = {
    "server.headless": "true",
    "browser.gatherUsageStats": "false",
    "client.toolbarMode": "minimal",
    "client.showErrorDetails": "none",
    "server.fileWatcherType": "none",
    "server.runOnSave": "false",
    "global.developmentMode": "false",
    "server.enableXsrfProtection": "true",
    "server.maxUploadSize": "200",
}


def streamlit_argv(host: str, port: int) -> list[str]:
    flags = {**SAFE_FLAGS, "server.address": host, "server.port": str(port)}
    return [sys.executable, "-m", "streamlit", "run", str(HOME), *(f"--{k}={v}" for k, v in flags.items())]


@click.command("flashdock", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on (others need a login)")
@click.option("--port", type=int, default=8501, show_default=True, help="port to listen on")
@click.option("--hash-password", "hash_only", is_flag=True, help="print FLASHDOCK_PASSWORD_HASH of stdin")
def main(host: str, port: int, hash_only: bool) -> None:
    """Start FlashDock (Streamlit) against the registry in FLASHDOCK_REGISTRY_URL."""
    if hash_only:
        password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        if not password:
            raise click.UsageError("an empty password")
        click.echo(hash_password(password))
        return
    if not is_loopback(host) and not settings_mod.load().login_required:
        raise click.UsageError(
            f"refusing to listen on {host} without a login: set FLASHDOCK_PASSWORD_HASH (flashdock --hash-password) "
            "or FLASHDOCK_TRUSTED_USER_HEADER behind an identity-aware proxy, or keep the default 127.0.0.1"
        )
    argv = streamlit_argv(host, port)
    os.execv(argv[0], argv)  # Streamlit replaces this process, so signals reach it


if __name__ == "__main__":
    main()
