"""The registry's module shape: a SQLite registry runs without the etcd modules, and the app
factory and its route modules import one another only at module level, in one direction."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

from tests.support import REPO

ETCD_MODULES = (
    "etcd3gw",
    "services.registry.etcd_store",
    "services.registry.etcd_wire",
    "services.registry.etcd_catalog",
    "services.registry.etcd_mirror",
    "services.registry.etcd_nodes",
)

SQLITE_REGISTRY = textwrap.dedent(
    """
    import sys, tempfile
    from services.common.clock import FakeClock
    from services.common.settings import RegistrySettings
    from services.registry.__main__ import open_store
    from services.registry.app import create_app

    settings = RegistrySettings(db=tempfile.mkdtemp() + "/r.db", store="sqlite")
    app = create_app(settings, open_store(settings), FakeClock(), start_background=False)
    client = app.test_client()
    body = {"service_name": "echo", "host": "127.0.0.1", "port": 9001}
    assert client.post("/api/v1/services/register", json=body).status_code == 201
    assert client.get("/api/v1/services?index=0&wait=0").status_code == 200
    assert client.get("/compat/v0/api/v1/services").status_code == 200
    assert client.get("/health").json["store"] == "sqlite"
    app.extensions["registry"].catalog.close()
    print(sorted(m for m in {ETCD_MODULES!r} if m in sys.modules))
    """
)


def test_sqlite_registry_starts_without_importing_etcd():
    script = SQLITE_REGISTRY.replace("{ETCD_MODULES!r}", repr(ETCD_MODULES))
    # A fresh interpreter: this test process may already hold the etcd modules (other tests).
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def _registry_imports(path) -> list[tuple[str, bool]]:
    """(module, inside a function?) for each ``services.registry`` import in ``path``."""
    tree = ast.parse(path.read_text())
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    nested = {id(inner) for fn in functions for inner in ast.walk(fn)}
    return [
        (node.module, id(node) in nested)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("services.registry")
    ]


def test_route_modules_do_not_import_the_app_factory():
    registry = REPO / "services" / "registry"
    for name in ("api.py", "compat.py", "state.py", "errors.py"):
        imports = _registry_imports(registry / name)
        assert not any(in_function for _, in_function in imports), f"{name} imports inside a function: {imports}"
        assert "services.registry.app" not in {module for module, _ in imports}, name
    app_imports = _registry_imports(registry / "app.py")
    function_level = {module for module, in_function in app_imports if in_function}
    assert function_level <= {"services.registry.etcd_catalog"}, function_level
