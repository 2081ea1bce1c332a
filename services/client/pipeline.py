"""Pipeline runner: a folder of tasks through a chain of capabilities, each step's output feeding the next.

    python -m services.client.pipeline --registry http://127.0.0.1:8500 \\
        --steps codon-optimization,codon-verification --input-dir tasks/ --output-dir results/

A task is ``{"input": {"sequence": "...", "options": {...}}, "step_options": {STEP: {...}},
"metadata": {"request_id": ...}}``. A step is ``CAPABILITY[:TASK_TYPE]``; the task type
defaults to the capability's name (sequence workers accept their capabilities as task types).
Step *n* is sent as ``POST /predict`` to a worker with that capability, with body
``{"sequence", "task_type", "options"}``: the sequence is the previous step's output
``sequence`` when it has one (a codon optimiser's DNA), else the previous step's; the options
are the task's shared options, then its ``step_options`` for that step, then the previous
output's ``--carry`` fields (``protein``: what a verifier checks the translation against).

Results are written like the batch runner's (atomically, one ``<stem>.json`` per task, plus
``steps``: every step's output and who served it). A re-run skips successful tasks and resumes
a failed one at its first failed step, reusing the outputs of the steps before it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from services.client.batch import (
    TaskError,
    call_metadata,
    folder_params,
    folder_router,
    parse_folder_args,
    record_failure,
    record_success,
    run_folder,
    task_request_id,
    write_atomic,
)
from services.client.router import Router
from services.common.cli import env_settings
from services.common.settings import ClientSettings

log = logging.getLogger("services.client.pipeline")

DEFAULT_CARRY = ("protein",)
# A capability served by several kinds: the one listed first wins while it has a usable worker.
DEFAULT_PREFERENCES = {"protein-embedding": ["hf", "antiberty"]}


@dataclass(frozen=True)
class Step:
    """One link of the chain: the capability routed to and the task type sent."""

    capability: str
    task_type: str

    @property
    def name(self) -> str:
        return self.capability if self.task_type == self.capability else f"{self.capability}:{self.task_type}"

    @classmethod
    def parse(cls, text: str) -> Step:
        capability, _, task_type = text.strip().partition(":")
        if not capability:
            raise ValueError(f"empty step in {text!r}")
        return cls(capability, task_type or capability)


def parse_steps(text: str) -> list[Step]:
    steps = [Step.parse(part) for part in text.split(",") if part.strip()]
    if not steps:
        raise ValueError("--steps needs at least one capability")
    return steps


def load_pipeline_task(path: Path) -> dict[str, Any]:
    """A task with ``input.sequence`` (string), optional ``input.options``, ``step_options``, ``metadata``."""
    try:
        task = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TaskError(f"cannot read {path.name}: {exc}") from None
    body = task.get("input") if isinstance(task, dict) else None
    if not isinstance(body, dict) or not isinstance(body.get("sequence"), str):
        raise TaskError(f"{path.name} must be an object with 'input': {{'sequence': str, 'options': {{...}}}}")
    for key, kind in (("metadata", dict), ("step_options", dict)):
        if not isinstance(task.get(key, {}), kind):
            raise TaskError(f"{path.name}: '{key}' must be an object")
    if not isinstance(body.get("options", {}), dict):
        raise TaskError(f"{path.name}: 'input.options' must be an object")
    return task


def previous_steps(result_path: Path, steps: Sequence[Step]) -> list[dict[str, Any]]:
    """The leading successful steps of an earlier run of the same chain (to resume after them)."""
    try:
        earlier = json.loads(result_path.read_text(encoding="utf-8")).get("steps") or []
    except (OSError, ValueError, AttributeError):
        return []
    done = []
    for step, record in zip(steps, earlier, strict=False):
        if not isinstance(record, dict) or record.get("step") != step.name or record.get("status") != "success":
            break
        done.append(record)
    return done


def next_body(task: dict[str, Any], step: Step, sequence: str, carried: Mapping[str, Any]) -> dict[str, Any]:
    options = {**task["input"].get("options", {}), **task.get("step_options", {}).get(step.name, {}), **carried}
    return {"sequence": sequence, "task_type": step.task_type, "options": options}


def run_pipeline_task(
    router: Router,
    task_path: Path,
    result_path: Path,
    steps: Sequence[Step],
    *,
    carry: Sequence[str] = DEFAULT_CARRY,
    deadline: float | None = None,
) -> bool:
    """Run one task through every step and write its result; True when all steps succeeded."""
    started = time.monotonic()
    records = previous_steps(result_path, steps)
    doc: dict[str, Any] = {"status": "error", "output": None, "error": None, "steps": records, "metadata": {}}
    try:
        task = load_pipeline_task(task_path)
        rid = task_request_id(task)[:120]
        doc["metadata"]["request_id"] = rid
        sequence = task["input"]["sequence"]
        carried: dict[str, Any] = {}
        for record in records:  # replay what the reused steps handed on
            sequence, carried = _hand_on(record["output"], sequence, carry)
        for i, step in enumerate(steps[len(records) :], start=len(records)):
            meta = call_metadata(step.capability)
            meta["request_id"] = f"{rid}.{i}"
            t0 = time.monotonic()
            try:
                result = router.call(
                    step.capability,
                    "POST",
                    "/predict",
                    json=next_body(task, step, sequence, carried),
                    deadline=deadline,
                    idempotent=True,
                    request_id=meta["request_id"],
                )
            except Exception as exc:
                error = record_failure(meta, exc, f"{task_path.name} step {step.name}")
                meta["processing_time_ms"] = round((time.monotonic() - t0) * 1000, 3)
                records.append({"step": step.name, "status": "error", "output": None, "error": error, "metadata": meta})
                doc["error"] = {**error, "step": step.name}
                return False
            record_success(meta, result)
            meta["processing_time_ms"] = round((time.monotonic() - t0) * 1000, 3)
            records.append(
                {"step": step.name, "status": "success", "output": result.data, "error": None, "metadata": meta}
            )
            sequence, carried = _hand_on(result.data, sequence, carry)
        doc.update(status="success", output=records[-1]["output"])
        return True
    except TaskError as exc:
        doc["error"] = record_failure({}, exc, task_path.name)
        return False
    finally:
        doc["metadata"]["steps_completed"] = sum(1 for r in records if r["status"] == "success")
        doc["metadata"]["processing_time_ms"] = round((time.monotonic() - started) * 1000, 3)
        write_atomic(result_path, doc)


def _hand_on(output: Any, sequence: str, carry: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """What a step passes to the next: its output sequence (else the one it got) and the carried fields."""
    if not isinstance(output, dict):
        return sequence, {}
    produced = output.get("sequence")
    return (produced if isinstance(produced, str) else sequence), {k: output[k] for k in carry if k in output}


@dataclass
class PipelineSummary:
    steps: list[str]
    total: int
    succeeded: int
    failed: int
    skipped: int
    elapsed_s: float
    throughput: float


def run_pipeline(
    router: Router,
    input_dir: Path,
    output_dir: Path,
    steps: Sequence[Step],
    *,
    concurrency: int = 4,
    carry: Sequence[str] = DEFAULT_CARRY,
    deadline: float | None = None,
    progress: bool | None = None,
) -> PipelineSummary:
    """Every ``*.json`` task of ``input_dir`` through ``steps``; tasks already done are skipped."""

    def one(task_path: Path, result_path: Path) -> bool:
        return run_pipeline_task(router, task_path, result_path, steps, carry=carry, deadline=deadline)

    s = run_folder(input_dir, output_dir, one, concurrency=concurrency, progress=progress)
    return PipelineSummary(
        [step.name for step in steps], s.total, s.succeeded, s.failed, s.skipped, s.elapsed_s, round(s.throughput, 3)
    )


def parse_preferences(rules: Sequence[str]) -> dict[str, list[str]]:
    """``["protein-embedding=hf,antiberty"]`` → ``{"protein-embedding": ["hf", "antiberty"]}``."""
    prefs: dict[str, list[str]] = {}
    for rule in rules:
        capability, _, services = rule.partition("=")
        names = [s.strip() for s in services.split(",") if s.strip()]
        if not capability.strip() or not names:
            raise ValueError(f"--prefer takes CAPABILITY=SERVICE[,SERVICE...], got {rule!r}")
        prefs[capability.strip()] = names
    return prefs


def pipeline_params(defaults: ClientSettings) -> list[click.Parameter]:
    """The pipeline's flags: the folder runner's plus steps, carried fields and preferences."""
    return [
        *folder_params(defaults, concurrency=4, unit="step", in_flight="tasks"),
        click.Option(["--steps"], required=True, help="CAPABILITY[:TASK_TYPE],... in order"),
        click.Option(
            ["--carry"],
            default=",".join(DEFAULT_CARRY),
            show_default=True,
            help="output fields passed to the next step as options",
        ),
        click.Option(
            ["--prefer"],
            multiple=True,
            metavar="CAP=SVC[,SVC]",
            help="services to pick first for a capability, repeatable (default: protein-embedding=hf,antiberty)",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when every task went through every step, 1 when any failed, 2 on bad arguments."""
    settings = env_settings(ClientSettings)
    help = "Run a folder of tasks through a chain of capabilities (resumable; one result file per task)."
    prog = "python -m services.client.pipeline"
    args, registries = parse_folder_args(prog, help, pipeline_params(settings), argv, settings)
    try:
        steps = parse_steps(args.steps)
        preferences = parse_preferences(args.prefer) if args.prefer else DEFAULT_PREFERENCES
    except ValueError as exc:
        click.UsageError(str(exc)).show()
        return 2
    carry = [c.strip() for c in args.carry.split(",") if c.strip()]
    with folder_router(args, registries, settings, preferences=preferences) as router:
        summary = run_pipeline(
            router,
            args.input_dir,
            args.output_dir,
            steps,
            concurrency=args.concurrency,
            carry=carry,
            deadline=args.deadline,
            progress=args.progress,
        )
    print(
        f"pipeline: steps={'→'.join(summary.steps)} total={summary.total} succeeded={summary.succeeded} "
        f"failed={summary.failed} skipped={summary.skipped} elapsed={summary.elapsed_s:.2f}s "
        f"throughput={summary.throughput:.1f} tasks/s",
        flush=True,
    )
    print(json.dumps({"event": "summary", **asdict(summary)}), flush=True)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
