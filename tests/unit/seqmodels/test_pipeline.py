"""Pipeline runner with `responses`: each step feeds the next, results, resuming at the failed step, CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import responses

from services.client import Router, StaticDiscovery
from services.client.pipeline import Step, main, parse_preferences, parse_steps, run_pipeline
from services.common.instance import Instance


def codon_worker() -> Instance:
    caps = ["codon-optimization", "codon-verification"]
    return Instance(
        "codon-0", "codon", "h", 80, "http://codon-0.test", metadata={"models": ["dc"], "capabilities": caps}
    )


class FakeCodon:
    """Optimise: DNA for the protein; verify: valid when the DNA translates to options.protein."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.fail_verify = False

    def __call__(self, request):
        body = json.loads(request.body)
        self.bodies.append(body)
        if body["task_type"] == "codon-optimization":
            data = {"sequence": "ATG" + "AAA" * (len(body["sequence"]) - 1), "protein": body["sequence"], "cai": 1.0}
        elif self.fail_verify:
            err = {"code": "INVALID_SEQUENCE", "details": "nope"}
            return 400, {}, json.dumps({"success": False, "data": None, "error": err})
        else:
            data = {"valid": body["options"].get("protein") == "MKK", "gc_max": body["options"].get("gc_max")}
        return 200, {}, json.dumps({"success": True, "data": data, "error": None})


@pytest.fixture
def fake():
    codon = FakeCodon()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback("POST", "http://codon-0.test/predict", callback=codon)
        yield codon


def write_task(folder: Path, name: str, task) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(task) if not isinstance(task, str) else task)


STEPS = parse_steps("codon-optimization,codon-verification")


def test_each_step_feeds_the_next_and_the_result_records_every_step(fake, tmp_path: Path) -> None:
    task = {
        "input": {"sequence": "MKK", "options": {"host": "e_coli", "gc_max": 0.6}},
        "step_options": {"codon-verification": {"gc_max": 0.7}},
        "metadata": {"request_id": "t1"},
    }
    write_task(tmp_path / "in", "t1", task)
    router = Router(StaticDiscovery([codon_worker()]), rng=random.Random(0))
    summary = run_pipeline(router, tmp_path / "in", tmp_path / "out", STEPS, progress=False)
    assert (summary.total, summary.succeeded, summary.failed) == (1, 1, 0)
    optimise, verify = fake.bodies
    assert optimise == {
        "sequence": "MKK",
        "task_type": "codon-optimization",
        "options": {"host": "e_coli", "gc_max": 0.6},
    }
    assert verify["sequence"] == "ATGAAAAAA", "the optimiser's DNA is what gets verified"
    assert verify["options"] == {"host": "e_coli", "gc_max": 0.7, "protein": "MKK"}, "step options, then carry"
    doc = json.loads((tmp_path / "out" / "t1.json").read_text())
    assert doc["status"] == "success" and doc["output"] == {"valid": True, "gc_max": 0.7} and doc["error"] is None
    assert [s["step"] for s in doc["steps"]] == ["codon-optimization", "codon-verification"]
    assert [s["metadata"]["request_id"] for s in doc["steps"]] == ["t1.0", "t1.1"]
    assert doc["steps"][0]["metadata"]["service"] == "codon" and doc["metadata"]["steps_completed"] == 2


def test_a_rerun_skips_done_tasks_and_resumes_a_failed_one_at_its_failed_step(fake, tmp_path: Path) -> None:
    write_task(tmp_path / "in", "a", {"input": {"sequence": "MKK"}})
    write_task(tmp_path / "in", "broken", "{nope")
    router = Router(StaticDiscovery([codon_worker()]), rng=random.Random(0))
    fake.fail_verify = True
    first = run_pipeline(router, tmp_path / "in", tmp_path / "out", STEPS, progress=False)
    assert (first.succeeded, first.failed) == (0, 2)
    doc = json.loads((tmp_path / "out" / "a.json").read_text())
    assert doc["status"] == "error" and doc["error"]["step"] == "codon-verification"
    assert doc["error"]["code"] == "INVALID_SEQUENCE" and doc["metadata"]["steps_completed"] == 1
    assert json.loads((tmp_path / "out" / "broken.json").read_text())["error"]["code"] == "INVALID_TASK"

    fake.fail_verify = False
    fake.bodies.clear()
    second = run_pipeline(router, tmp_path / "in", tmp_path / "out", STEPS, progress=False)
    assert (second.succeeded, second.failed, second.skipped) == (1, 1, 0)
    assert [b["task_type"] for b in fake.bodies] == ["codon-verification"], "the optimisation is not redone"
    assert fake.bodies[0]["sequence"] == "ATGAAAAAA" and fake.bodies[0]["options"]["protein"] == "MKK"
    third = run_pipeline(router, tmp_path / "in", tmp_path / "out", STEPS, progress=False)
    assert third.skipped == 1 and len(fake.bodies) == 1


def test_steps_and_preferences_parse() -> None:
    assert parse_steps("protein-embedding, splice-site:splice") == [
        Step("protein-embedding", "protein-embedding"),
        Step("splice-site", "splice"),
    ]
    assert Step("splice-site", "splice").name == "splice-site:splice"
    with pytest.raises(ValueError):
        parse_steps(" , ")
    assert parse_preferences(["protein-embedding=hf, antiberty"]) == {"protein-embedding": ["hf", "antiberty"]}
    with pytest.raises(ValueError):
        parse_preferences(["protein-embedding="])


def test_cli_help_and_argument_errors(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--steps" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--registry",
                "http://127.0.0.1:1",
                "--steps",
                "x",
                "--input-dir",
                str(tmp_path / "no"),
                "--output-dir",
                "o",
            ]
        )
    assert exit_info.value.code == 2
