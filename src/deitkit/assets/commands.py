"""Command components checked against the `deitkit` CLI: commands, flags, types, defaults."""

from __future__ import annotations

import contextlib
import difflib
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import click

from deitkit.assets.yaml_loading import Problems

# `$[[...]]` (Azure ML's optional part) becomes two marker tokens around what it holds.
_OPEN, _CLOSE = "\x00[[", "\x00]]"
_SHELL_SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")", "{", "}"}
_BINDING = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NUMBER = re.compile(r"^-\d+(\.\d+)?([eE][-+]?\d+)?$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PRIMITIVE_TYPES = ("string", "integer", "number", "boolean")
_ARTICLE = {"integer": "an", "number": "a", "boolean": "a", "string": "a"}
# Which click parameter types can take the value an Azure ML input of each type renders to.
_ACCEPTS: dict[str, tuple[type[click.ParamType], ...]] = {
    "boolean": (click.types.BoolParamType,),
    "integer": (click.types.IntParamType, click.types.FloatParamType, click.types.StringParamType),
    "number": (click.types.FloatParamType, click.types.StringParamType),
    "string": (click.types.StringParamType, click.Choice),
}
_PATH_TYPES = (click.types.StringParamType, click.Path)
# What click (8.3 on) holds as the default of an option given none; older releases hold None.
_NO_DEFAULT = getattr(click.core, "UNSET", None)


@dataclass
class Word:
    """One token after `deitkit <command>`; `optional` when it sits inside `$[[...]]`."""

    text: str
    optional: bool


@dataclass
class Invocation:
    """One `deitkit ...` call in a command line: its command path and what follows it."""

    words: list[str]
    rest: list[Word] = field(default_factory=list)


def check_input_declarations(spec: Mapping[str, Any], problems: Problems) -> bool:
    """Enums and defaults of the right type, defaults within their enum; True when all are.

    azure-ai-ml misses a default outside its enum and refuses a default of the wrong type
    without naming the input; these checks name `inputs.NAME.default`.
    """
    clean = True
    for name, decl in (spec.get("inputs") or {}).items():
        if not isinstance(decl, dict) or decl.get("type") not in PRIMITIVE_TYPES:
            continue
        kind, where = decl["type"], f"inputs.{name}"
        values = [("enum", v) for v in decl.get("enum") or []]
        values += [("default", decl["default"])] if decl.get("default") is not None else []
        for label, value in values:
            if not _fits(kind, value):
                problems.add(f"{where}.{label}", f"{value!r} is not {_ARTICLE[kind]} {kind}")
                clean = False
        enum = decl.get("enum")
        if enum and decl.get("default") is not None and decl["default"] not in enum:
            problems.add(f"{where}.default", f"{decl['default']!r} is not one of {enum}")
            clean = False
    return clean


def _fits(kind: str, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool) or str(value).lower() in ("true", "false")
    if isinstance(value, bool):
        return kind == "string"
    if kind == "integer":
        return isinstance(value, int)
    if kind == "number":
        return isinstance(value, int | float)
    return isinstance(value, str | int | float)


def parse_invocations(command: str) -> list[Invocation]:
    """Every `deitkit ...` call in a shell command line (other programs are left alone)."""
    text = command.replace("$[[", f" {_OPEN} ").replace("]]", f" {_CLOSE} ")
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segments: list[list[Word]] = [[]]
    depth = 0
    for token in lexer:
        if token == _OPEN:
            depth += 1
        elif token == _CLOSE:
            depth = max(depth - 1, 0)
        elif token in _SHELL_SEPARATORS:
            segments.append([])
        else:
            segments[-1].append(Word(token, depth > 0))
    invocations = []
    for words in segments:
        while words and _ASSIGNMENT.match(words[0].text):  # VAR=value deitkit ...
            words = words[1:]
        if words and words[0].text == "deitkit":
            invocations.append(Invocation(words=["deitkit"], rest=words[1:]))
    return invocations


def check_command(
    spec: Mapping[str, Any], problems: Problems, cli: click.Group, *, where: str = "command"
) -> int:
    """Check every `deitkit` call in a command component's `command:`; return how many.

    Each call must name an existing command; each flag must be one of its options and get a
    value exactly when the option takes one; an input that feeds an option must have a type
    the option accepts, its enum and default must be values the option accepts, and its
    default must be the option's own; required options and arguments must be given whenever
    the command runs.
    """
    text = spec.get("command")
    if not isinstance(text, str):
        return 0
    inputs = spec.get("inputs") or {}
    outputs = spec.get("outputs") or {}
    calls = parse_invocations(text)
    for call in calls:
        command = _resolve(call, cli, problems, where)
        if command is not None:
            _check_call(call, command, inputs, outputs, problems, where)
    return len(calls)


def _resolve(call: Invocation, cli: click.Group, problems: Problems, where: str):
    command: click.Command = cli
    while isinstance(command, click.Group) and call.rest and not call.rest[0].text.startswith("-"):
        name = call.rest[0].text
        sub = command.commands.get(name)
        if sub is None:
            known = ", ".join(sorted(command.commands)) or "none"
            problems.add(where, f"`{' '.join(call.words)}` has no command {name!r}; known: {known}")
            return None
        call.words.append(name)
        call.rest = call.rest[1:]
        command = sub
    if isinstance(command, click.Group):
        problems.add(where, f"`{' '.join(call.words)}` needs a command after it")
        return None
    return command


def _options(command: click.Command) -> dict[str, tuple[click.Option, bool]]:
    """Every spelling of every option → (option, whether this spelling is the negative one)."""
    table = {}
    for param in command.params:
        if isinstance(param, click.Option):
            table.update({opt: (param, False) for opt in param.opts})
            table.update({opt: (param, True) for opt in param.secondary_opts})
    return table


def _takes_value(option: click.Option, negative: bool) -> tuple[bool, bool]:
    """(may take a value, must take one) for this spelling of `option`."""
    if negative or (option.is_flag and not getattr(option, "_flag_needs_value", False)):
        return False, False
    optional_value = getattr(option, "_flag_needs_value", False)  # `--x [VALUE]` options
    return True, not optional_value


def _check_call(call, command, inputs, outputs, problems: Problems, where: str) -> None:
    name = " ".join(call.words)
    table = _options(command)
    given: dict[str, list[bool]] = {}  # param name → for each time it is set: always set?
    positional: list[Word] = []
    words, i = call.rest, 0
    while i < len(words):
        word = words[i]
        if not (word.text.startswith("-") and not _NUMBER.match(word.text)):
            positional.append(word)
            i += 1
            continue
        flag, eq, inline = word.text.partition("=")
        nxt = words[i + 1] if i + 1 < len(words) else None
        # A binding after a flag is its value, whatever the option; a plain word only when the
        # option takes one (otherwise it is an argument).
        bound = nxt is not None and _is_value(nxt.text) and "${{" in nxt.text
        if flag not in table:
            close = difflib.get_close_matches(flag, list(table), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            problems.add(where, f"`{name}` has no option {flag}{hint}")
            i += 2 if bound and not eq else 1
            continue
        option, negative = table[flag]
        may, must = _takes_value(option, negative)
        value: Word | None = Word(inline, word.optional) if eq else None
        if value is None and nxt is not None and _is_value(nxt.text) and (may or bound):
            value, i = nxt, i + 1
        if value is not None and not may:
            problems.add(where, f"`{name}` {flag} is a switch and takes no value, got {value.text}")
        elif value is None and must:
            problems.add(where, f"`{name}` {flag} needs a value")
        elif value is not None:
            _check_value(name, flag, option, value.text, inputs, outputs, problems, where)
        given.setdefault(option.name, []).append(_always(word, value, inputs))
        i += 1
    _check_required(name, command, given, positional, inputs, problems, where)


def _is_value(text: str) -> bool:
    return not text.startswith("-") or bool(_NUMBER.match(text))


def _check_value(name, flag, param, text, inputs, outputs, problems: Problems, where) -> None:
    bindings = _BINDING.findall(text)
    for kind, ref in bindings:
        declared = inputs if kind == "inputs" else outputs
        if ref not in declared:
            problems.add(where, f"{flag} uses ${{{{{kind}.{ref}}}}}, which the component lacks")
            return
    whole = _BINDING.fullmatch(text.strip("'\""))
    if whole and whole.group(1) == "inputs":
        _check_input_type(name, flag, param, whole.group(2), inputs[whole.group(2)], problems)
    elif whole:
        _check_type(name, flag, param, "uri_folder", f"output {whole.group(2)!r}", problems)
    elif not bindings and not isinstance(param.type, click.Path):
        error = _convert(param, text)
        if error:
            problems.add(where, f"`{name}` {flag} {text}: {error}")


def _check_input_type(name, flag, param, input_name, spec, problems: Problems) -> None:
    spec = spec if isinstance(spec, dict) else {}
    kind = str(spec.get("type", "string"))
    field_ = f"inputs.{input_name}"
    if not _check_type(name, flag, param, kind, f"input {input_name!r}", problems, field_):
        return
    enum = spec.get("enum")
    if isinstance(param.type, click.Choice) and not enum:
        choices = ", ".join(map(str, param.type.choices))
        problems.add(field_, f"feeds `{name}` {flag}, a choice of {choices}: give it an enum")
    if kind not in PRIMITIVE_TYPES or isinstance(param.type, click.Path):
        return
    defaults = [spec["default"]] if spec.get("default") is not None else []
    for label, values in (("enum", enum or []), ("default", defaults)):
        for value in values:
            error = _convert(param, value)
            if error:
                problems.add(f"{field_}.{label}", f"{value!r} for `{name}` {flag}: {error}")
            elif label == "default":
                _check_default(name, flag, param, value, problems, field_)


def _check_default(name, flag, param, value, problems: Problems, field_: str) -> None:
    """An input's default must be the option's own, so that it is stated once (by the CLI).

    Compared as the option reads them: the input's default as Azure ML renders it on the
    command line (booleans as True/False), converted by the option's type. A required option
    has no default of its own, and a multi-valued one is no input's to state.
    """
    if param.required or param.multiple or param.nargs != 1:
        return
    given = param.type.convert(str(value), param, None)
    # `get_default` resolves callables and flags' implied defaults; the context it reads a
    # default map from has none here.
    default = param.get_default(click.Context(click.Command(name)))
    if default is None or default is _NO_DEFAULT:
        problems.add(
            f"{field_}.default",
            f"{value!r}, but `{name}` {flag} has no default: leave the input without one",
        )
        return
    with contextlib.suppress(click.BadParameter):  # else compare with the default as written
        default = param.type.convert(default, param, None)
    if given != default:
        problems.add(f"{field_}.default", f"{value!r}, but `{name}` {flag} defaults to {default!r}")


def _check_type(name, flag, param, kind, what, problems: Problems, field_: str = "command"):
    accepted = _ACCEPTS.get(kind, _PATH_TYPES)
    if isinstance(param.type, accepted):
        return True
    problems.add(field_, f"{what} ({kind}) feeds `{name}` {flag}, which takes {param.type.name}")
    return False


def _convert(param: click.Parameter, value: Any) -> str | None:
    """Why `param` would refuse `value` as Azure ML renders it on the command line, or None."""
    try:
        param.type.convert(str(value), param, None)
    except click.BadParameter as err:
        return err.message
    return None


def _always(flag: Word, value: Word | None, inputs: Mapping[str, Any]) -> bool:
    """Whether a flag reaches the CLI on every run: outside `$[[...]]`, or fed a defaulted input."""
    if not flag.optional:
        return True
    whole = _BINDING.fullmatch(value.text.strip("'\"")) if value is not None else None
    spec = inputs.get(whole.group(2)) if whole and whole.group(1) == "inputs" else None
    return isinstance(spec, dict) and spec.get("default") is not None


def _check_required(name, command, given, positional, inputs, problems: Problems, where) -> None:
    for param in command.params:
        if not (isinstance(param, click.Option) and param.required):
            continue
        if param.name not in given:
            problems.add(where, f"`{name}` requires {param.opts[0]}; the command omits it")
        elif not any(given[param.name]):
            problems.add(
                where,
                f"`{name}` requires {param.opts[0]}; the command passes it only inside $[[...]] "
                "from inputs without a default",
            )
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    wanted = sum(p.nargs for p in arguments if p.required and p.nargs > 0)
    room = None if any(p.nargs < 0 for p in arguments) else sum(p.nargs for p in arguments)
    if len(positional) < wanted:
        names = " ".join(p.human_readable_name for p in arguments)
        problems.add(where, f"`{name}` takes {names}; the command gives {len(positional)} of them")
    elif room is not None and len(positional) > room:
        extra = positional[room].text
        problems.add(where, f"`{name}` takes no argument {extra!r} (a value after a switch?)")
    missing = [w.text for w in positional[:wanted] if w.optional]
    if missing:
        problems.add(where, f"`{name}` needs its arguments outside $[[...]], got {missing[0]}")
