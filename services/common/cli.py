"""Flag > environment variable > default, declared once per setting and resolved by click.

Why click: it ships with Flask, so it costs no new dependency, and its ``envvar=`` options do the
precedence, the type conversion and the exit-2 usage errors that each CLI used to write by hand.
A settings dataclass declares its fields with :func:`setting` (flag, variable, help); a CLI is
the list of options :func:`options` makes from them (plus any ``click.Option`` of its own), and
:func:`parse` runs a command line through it. Code without a command line (a library) reads the
same fields with :func:`env_settings`, through the same options.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

T = TypeVar("T")
LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False)
Validator = Callable[[dict[str, Any]], None]


class Pattern(click.ParamType):
    """A string matching ``regex`` (e.g. a device name), with ``what`` in the error message."""

    name = "text"

    def __init__(self, regex: str, what: str) -> None:
        self.regex, self.what = re.compile(regex), what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not self.regex.match(str(value)):
            self.fail(f"{self.what}, got {value!r}", param, ctx)
        return str(value)


DEVICE = Pattern(r"^(cpu|cuda(:\d+)?)$", "device must be cpu, cuda or cuda:N")


def comma_list(_ctx: click.Context, _param: click.Parameter, values: Iterable[str]) -> list[str]:
    """Repeated flags and comma-separated values (``a,b`` or ``--x a --x b``) as one list."""
    return [part.strip() for value in values or () for part in str(value).split(",") if part.strip()]


def setting(
    default: Any, help: str, *, env: str | None = None, flag: str | None = None, secret: bool = False, **option: Any
) -> Any:
    """A dataclass field that :func:`options` turns into a click option (``flag`` defaults to ``--name``).

    A tuple default makes a list field (a repeatable flag, comma-separated in the environment).
    ``secret`` (implied for names ending in ``token``) adds ``--name-file`` / ``ENV_FILE``: the
    value read from a file, so it never shows in ``ps``.
    """
    meta = {"click": {"help": help, "env": env, "flag": flag, "option": option, "secret": secret}}
    if isinstance(default, tuple):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def options(
    cls: type, *, only: Sequence[str] | None = None, exclude: Sequence[str] = (), **overrides: dict[str, Any]
) -> list[click.Option]:
    """The click options of ``cls``'s :func:`setting` fields; ``overrides[name]`` replaces option arguments."""
    made = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("click")
        if meta is None or f.name in exclude or (only is not None and f.name not in only):
            continue
        default, flag = _default(f), meta["flag"] or "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"default": default, "help": meta["help"], "show_default": default != ""}
        if meta["env"]:
            kwargs.update(envvar=meta["env"], show_envvar=True)
        if isinstance(default, list):
            kwargs.update(multiple=True, callback=comma_list, show_default=",".join(default) or False)
        elif isinstance(default, bool) and "/" not in flag:
            flag = f"{flag}/--no-{flag[2:]}"
        kwargs.update(meta["option"])
        kwargs.update(overrides.get(f.name, {}))
        made.append(click.Option([flag, f.name], **kwargs))
        if meta.get("secret") or f.name.endswith("token"):
            made.append(SecretFile(f.name, flag, meta["env"]))
    return made


class SecretFile(click.Option):
    """``--x-file PATH`` (or ``X_FILE``) beside a secret option ``--x``: the secret is the file's content.

    :func:`parse` and :func:`env_settings` fold it into the secret's own value (see :func:`_read_secret_files`).
    """

    def __init__(self, target: str, flag: str, env: str | None) -> None:
        self.target, self.target_flag = target, flag
        super().__init__(
            [f"{flag}-file", f"{target}_file"],
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            envvar=f"{env}_FILE" if env else None,
            show_envvar=bool(env),
            help=f"read {flag} from this file (keeps it out of ps; wins over the plain variable)",
        )


def _read_secret_files(cmd: click.Command, ctx: click.Context) -> None:
    """Replace each secret by its file's content when a file is named; drop the ``*_file`` params.

    Precedence: the secret's own flag > a file (flag or variable) > the secret's variable > default.
    Naming the secret and its file both on the command line is a usage error.
    """
    for param in cmd.params:
        if not isinstance(param, SecretFile):
            continue
        path = ctx.params.pop(param.name, None)
        given_flag = from_command_line(ctx, param.target)
        if given_flag:
            click.echo(f"warning: {param.target_flag} on the command line shows in ps; use {param.opts[0]}", err=True)
        if path is None:
            continue
        if given_flag and from_command_line(ctx, param.name):
            raise click.UsageError(f"give {param.target_flag} or {param.opts[0]}, not both", ctx)
        if given_flag:
            continue
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise click.UsageError(f"{param.opts[0]}: cannot read {path}: {exc.strerror}", ctx) from None
        if not value:
            raise click.UsageError(f"{param.opts[0]}: {path} is empty (a token file holds the token)", ctx)
        ctx.params[param.target] = value


def command(prog: str, params: Sequence[click.Parameter], help: str | None = None, **settings: Any) -> click.Command:
    """A command that only parses (its values come back from :func:`parse`)."""
    return click.Command(prog, params=list(params), help=help, context_settings={"max_content_width": 100, **settings})


def parse(cmd: click.Command, argv: Sequence[str] | None = None, validate: Validator | None = None) -> click.Context:
    """Parse ``argv`` (default: ``sys.argv[1:]``); ``--help`` exits 0, bad input prints usage and exits 2.

    ``validate(params)`` checks what spans several flags; it raises :class:`click.UsageError`.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        ctx = cmd.make_context(cmd.name, args)
        _read_secret_files(cmd, ctx)
        if validate is not None:
            with ctx:
                validate(ctx.params)
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    return ctx


def from_params(cls: type[T], params: Mapping[str, Any], base: T | None = None) -> T:
    """``base`` (default: :func:`env_settings`) with every field that ``params`` names replaced."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    start = base if base is not None else env_settings(cls)
    return dataclasses.replace(start, **{k: v for k, v in params.items() if k in names})  # type: ignore[type-var]


def env_settings(cls: type[T]) -> T:
    """``cls`` from the environment and defaults alone: what a command line without flags would give."""
    cmd = command(cls.__name__, options(cls))
    try:
        ctx = cmd.make_context(cmd.name, [])
        _read_secret_files(cmd, ctx)
    except click.ClickException as exc:
        raise ValueError(exc.format_message()) from None
    return cls(**ctx.params)


def from_command_line(ctx: click.Context, name: str) -> bool:
    """Whether ``name`` was given as a flag (not taken from the environment or the default)."""
    return ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
