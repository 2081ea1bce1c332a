"""The shared worker flags and the launcher's argument handling and restart policy."""

from __future__ import annotations

import sys

import pytest

from services.client.registry_api import normalize_urls
from services.common.settings import WorkerSettings
from services.worker.cli import parse_worker_args
from services.worker.echo import ECHO_OPTIONS
from services.worker.launch import KINDS, child_command, module_available, parse_args
from services.worker.supervisor import RestartPolicy


def parse(*argv: str) -> WorkerSettings:
    return parse_worker_args(list(argv), "w", kind_options=ECHO_OPTIONS)[1]


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_MAX_INFLIGHT", "7")
    monkeypatch.setenv("REGISTRY_URL", "http://env-reg:8500")
    monkeypatch.setenv("WORKER_TAGS", "gpu,a100")
    from_env = parse()
    assert from_env.max_inflight == 7
    assert from_env.registry_urls == ["http://env-reg:8500"]
    assert from_env.tags == ["gpu", "a100"]
    flagged = parse("--max-inflight", "3", "--registry", "r1:1,r2:2", "--registry", "r3:3", "--tag", "x")
    assert flagged.max_inflight == 3
    assert normalize_urls(flagged.registry_urls) == ["http://r1:1", "http://r2:2", "http://r3:3"]
    assert flagged.tags == ["x"]


def test_runtime_flags_reach_the_settings() -> None:
    settings = parse(
        "--port", "0", "--host", "0.0.0.0", "--advertise-host", "gpu-7", "--device", "cuda:1", "--token", "t",
        "--drain-timeout", "2.5", "--active-check", "--weight", "5", "--log-level", "debug",
    )  # fmt: skip
    assert (settings.port, settings.host, settings.advertise_host) == (0, "0.0.0.0", "gpu-7")
    assert (settings.device, settings.token, settings.drain_timeout) == ("cuda:1", "t", 2.5)
    assert settings.active_check is True and settings.weight == 5 and settings.log_level == "DEBUG"


@pytest.mark.parametrize("argv", [["--device", "tpu"], ["--max-inflight", "0"], ["--port", "70000"]])
def test_bad_flags_exit_with_a_message(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2 and argv[0] in capsys.readouterr().err


def test_a_rate_limit_flag_overrides_and_the_environment_only_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_RATE_LIMIT_PER_MIN", "5")
    assert parse_worker_args([])[1:] == (parse(), None)
    assert parse_worker_args(["--rate-limit-per-min", "0"])[2] == 0


def test_help_lists_runtime_and_kind_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_worker_args(["--help"], "python -m services.worker.echo", "Echo", ECHO_OPTIONS)
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ["--port", "--registry", "--advertise-host", "--token", "--device", "--max-inflight", "--latency-ms"]:
        assert flag in out


def test_launcher_splits_its_flags_from_the_kinds() -> None:
    args, extra = parse_args(
        ["echo", "--replicas", "3", "--latency-ms", "50", "--registry", "reg:8500", "--", "--seed", "1"]
    )
    assert args.kind == "echo" and args.replicas == 3
    assert extra == ["--latency-ms", "50", "--seed", "1"]
    command = child_command(args, extra)
    assert command[:3] == [sys.executable, "-m", "services.worker.echo"]
    assert command[command.index("--port") + 1] == "0"
    assert command[command.index("--registry") + 1] == "http://reg:8500"
    assert command[-4:] == ["--latency-ms", "50", "--seed", "1"]
    assert "--token" not in command  # the token travels in the environment


def test_model_selecting_kinds_pass_their_model() -> None:
    args, extra = parse_args(["compass-lite", "--registry", "r:1", "--device", "cuda", "--advertise-host", "node-3"])
    command = child_command(args, extra)
    assert command[1:5] == ["-m", "compass.service.worker", "--model", "compass-lite"]
    assert command[command.index("--device") + 1] == "cuda"
    assert command[command.index("--advertise-host") + 1] == "node-3"
    assert {"echo", "compass", "compass-lite", "antiberty", "splice", "codon", "hf"} <= set(KINDS)  # others join


def test_launcher_rejects_unknown_kind_and_zero_replicas() -> None:
    with pytest.raises(SystemExit):
        parse_args(["nope"])
    with pytest.raises(SystemExit):
        parse_args(["echo", "--replicas", "0"])


def test_kind_modules_are_found_without_importing_them() -> None:
    assert module_available("services.worker.echo")
    assert not module_available("seqmodels.definitely_missing")
    assert not module_available("no_such_package.worker")


def test_restart_delay_doubles_for_fast_crashes_then_gives_up() -> None:
    policy = RestartPolicy(base_s=0.5, multiplier=2.0, cap_s=3.0, stable_after_s=30.0, max_fast_crashes=4)
    count, delays = 0, []
    for _ in range(5):
        count, delay = policy.after_crash(uptime_s=1.0, fast_crashes=count)
        delays.append(delay)
    assert delays == [0.5, 1.0, 2.0, 3.0, None]


def test_a_long_lived_child_starts_its_crash_count_over() -> None:
    policy = RestartPolicy(max_fast_crashes=2)
    assert policy.after_crash(uptime_s=31.0, fast_crashes=2) == (1, 0.5)


# -- secrets from a file (issue 18: a token on the command line is visible in ps) ------------------


def _secret(tmp_path, text: str = "s3cret\n"):
    path = tmp_path / "token"
    path.write_text(text)
    return path


def test_a_token_is_read_from_a_file_given_by_flag_or_environment(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _secret(tmp_path)
    assert parse("--token-file", str(path)).token == "s3cret"
    monkeypatch.setenv("REGISTRY_TOKEN_FILE", str(path))
    assert parse().token == "s3cret"
    monkeypatch.setenv("REGISTRY_TOKEN", "from-env")
    assert parse().token == "s3cret"  # a file named anywhere wins over the bare variable beside it
    assert parse("--token", "flag").token == "flag"  # the command line still wins over the environment
    args, _ = parse_args(["echo", "--token-file", str(path)])
    assert args.token == "s3cret" and "token_file" not in vars(args)


def test_every_cli_with_a_token_takes_a_token_file(tmp_path) -> None:
    from compass.service.cli import COMPASS_OPTIONS
    from services.common import cli
    from services.common.settings import RegistrySettings

    path = _secret(tmp_path, "reg-token")
    registry = cli.command("registry", cli.options(RegistrySettings))  # what services.registry parses with
    assert RegistrySettings(**cli.parse(registry, ["--token-file", str(path)]).params).token == "reg-token"
    args = parse_worker_args(["--api-token-file", str(path)], "w", kind_options=COMPASS_OPTIONS)[0]
    assert args.api_token == "reg-token" and "api_token_file" not in vars(args)


@pytest.mark.parametrize("case", ["both", "empty", "missing"])
def test_a_bad_token_file_is_a_usage_error(tmp_path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = _secret(tmp_path, "" if case == "empty" else "t")
    argv = {"both": ["--token", "t", "--token-file", str(path)], "empty": ["--token-file", str(path)]}
    with pytest.raises(SystemExit) as info:
        parse(*argv.get(case, ["--token-file", str(tmp_path / "absent")]))
    assert info.value.code == 2 and "token" in capsys.readouterr().err
