"""Batch runner with `responses`: result shape, atomic writes, resumability, exit codes, --help."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import responses

from services.client import Router, StaticDiscovery
from services.client.batch import is_done, main, run_batch, run_task, write_atomic
from services.common.instance import Instance


def inst(n: int) -> Instance:
    return Instance(f"echo-{n}", "echo", "h", 80, f"http://echo-{n}.test", metadata={"models": ["echo-1"]})


def echo(request):
    body = json.loads(request.body)
    if body.get("bad"):
        err = {"code": "INVALID_REQUEST", "details": "bad input"}
        return 400, {}, json.dumps({"success": False, "data": None, "error": err})
    return 200, {}, json.dumps({"success": True, "data": {"echo": body}, "error": None})


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        for n in range(2):
            rsps.add_callback("POST", f"http://echo-{n}.test/predict", callback=echo)
        yield rsps


def write_tasks(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        task = {"task": "score", "input": {"i": i}, "metadata": {"request_id": f"req-{i}"}}
        (folder / f"t{i:03d}.json").write_text(json.dumps(task))


def test_results_have_the_contract_shape_and_a_rerun_skips_successes(mock, tmp_path: Path) -> None:
    write_tasks(tmp_path / "in", 6)
    (tmp_path / "in" / "broken.json").write_text("{not json")
    (tmp_path / "in" / "bad.json").write_text(json.dumps({"task": "score", "input": {"bad": True}}))
    router = Router(StaticDiscovery([inst(0), inst(1)]), rng=random.Random(0))
    summary = run_batch(router, tmp_path / "in", tmp_path / "out", "echo", concurrency=3, progress=False)
    assert (summary.total, summary.succeeded, summary.failed, summary.skipped) == (8, 6, 2, 0)
    doc = json.loads((tmp_path / "out" / "t002.json").read_text())
    assert doc["status"] == "success" and doc["error"] is None
    assert doc["output"]["echo"] == {"i": 2, "task_type": "score"}
    meta = doc["metadata"]
    assert meta["request_id"] == "req-2" and meta["service"] == "echo" and meta["model"] == "echo-1"
    assert meta["instance"] in {"echo-0", "echo-1"} and meta["attempts"] == 1 and meta["fallback_used"] is False
    assert meta["processing_time_ms"] >= 0
    broken = json.loads((tmp_path / "out" / "broken.json").read_text())
    assert broken["status"] == "error" and broken["error"]["code"] == "INVALID_TASK"
    bad = json.loads((tmp_path / "out" / "bad.json").read_text())
    assert bad["error"]["code"] == "INVALID_REQUEST" and bad["metadata"]["instance"] in {"echo-0", "echo-1"}
    assert not list((tmp_path / "out").glob(".*.tmp")), "no temporary file left behind"

    calls = len(mock.calls)
    again = run_batch(router, tmp_path / "in", tmp_path / "out", "echo", concurrency=3, progress=False)
    assert (again.skipped, again.succeeded, again.failed) == (6, 0, 2), "only the failed tasks run again"
    assert len(mock.calls) == calls + 1  # bad.json once more; broken.json never reaches a worker


def test_is_done_only_for_a_success_result(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"status": "success"}))
    (tmp_path / "b.json").write_text(json.dumps({"status": "error"}))
    (tmp_path / "c.json").write_text("{trunc")
    assert [is_done(tmp_path / f"{n}.json") for n in "abcd"] == [True, False, False, False]


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    write_atomic(target, {"status": "success"})
    with pytest.raises(TypeError):
        write_atomic(target, {"status": object()})
    assert json.loads(target.read_text()) == {"status": "success"}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_help_exits_zero(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "--concurrency" in capsys.readouterr().out


def test_main_prints_the_summary_and_exits_non_zero_when_a_task_failed(mock, tmp_path: Path, capsys) -> None:
    listing = {"success": True, "data": {"instances": [inst(0).to_dict()], "index": 2}}
    mock.add("GET", "http://reg.test/api/v1/services", json=listing)
    write_tasks(tmp_path / "in", 3)
    args = [
        "--registry",
        "http://reg.test",
        "--service",
        "echo",
        "--input-dir",
        str(tmp_path / "in"),
        "--output-dir",
        str(tmp_path / "out"),
        "--concurrency",
        "2",
        "--no-progress",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "total=3 succeeded=3 failed=0 skipped=0" in out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["event"] == "summary" and summary["throughput"] > 0
    (tmp_path / "in" / "zz.json").write_text("[]")
    assert main(args) == 1
    assert "total=4 succeeded=0 failed=1 skipped=3" in capsys.readouterr().out


def test_a_runner_with_its_own_route_sends_common_fields_and_keeps_task_metadata(tmp_path: Path) -> None:
    """The docking screen's call: ``/dock`` with the screen's shared fields, index and name in the result."""
    with responses.RequestsMock() as rsps:
        rsps.add_callback("POST", "http://echo-0.test/dock", callback=echo)
        task = {"task": "dock", "input": {"smiles": "C"}, "metadata": {"index": 7, "name": "methane", "x": 1}}
        (tmp_path / "t.json").write_text(json.dumps(task))
        router = Router(StaticDiscovery([inst(0)]))
        common = {"protein_pdb": "P", "smiles": "overridden"}
        assert run_task(router, tmp_path / "t.json", tmp_path / "r.json", "echo", None, 5.0, path="/dock",
                        common=common, keep=("index", "name"))  # fmt: skip
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["output"]["echo"] == {"protein_pdb": "P", "smiles": "C", "task_type": "dock"}
    assert doc["metadata"]["index"] == 7 and doc["metadata"]["name"] == "methane" and "x" not in doc["metadata"]
