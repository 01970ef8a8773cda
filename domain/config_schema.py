"""Config tables as pydantic v2 models, and the one place their problems become ``<key path>: <what is wrong>``.

Every table of the config file is a :class:`Section`: a frozen pydantic model whose fields are the attributes
the rest of mmflow reads; a field's ``validation_alias`` is its key in the file when the two differ
(``id`` → ``account_id``). Validators raise :func:`problem` with our own wording, never pydantic's. On top of
pydantic, a Section gives what a config file needs, so that every problem is reported at once:

* ``prepare(data, load)`` — only while a file is loaded (a :class:`Load` is the validation context): keys of
  the file that are no attribute become one (``api_key_file`` → ``api_key``), inline secrets are refused;
* unknown keys, with a "did you mean" suggestion when one is close;
* ``checks(values, data)`` — problems between fields, run on every field that passed its own check even when
  others failed (``max_base_amount`` below ``min_base_amount`` is said next to a bad ``id``).

Constructing a Section in Python (``PairRules(pair_id=..., ...)``) runs the same field checks; the file-only
steps need a Load. :func:`problems_of` turns a ValidationError into the problem lines ConfigError prints.
"""
from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, NoReturn

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

__all__ = ["REPORTED", "Abort", "Issue", "Load", "Section", "file_keys", "issues_of", "key_path", "loading", "problem",
           "problems_of", "raise_issues"]

OURS = "mmflow"  # the error type of every problem worded here


@dataclass(frozen=True)
class Load:
    """The validation context while a config file is loaded: where its relative paths start, and what to check."""
    base_dir: Path
    read_secrets: bool = True   # read the secret files and variables the file names (False: commands that need none)
    for_service: bool = False   # refuse what only the service cannot use (an in-memory SQLite)
    check_venues: bool = True   # each account's ccxt class against the installed ccxt (False: commands that
    #                             only use the database, which then never import ccxt)

    def resolve(self, path: str) -> Path:
        """A path of the file, relative to the file's directory."""
        return (self.base_dir / path).resolve()


def loading(info: ValidationInfo | None) -> Load | None:
    """The Load of this validation, or None when a model is built in Python."""
    context = getattr(info, "context", None)
    return context if isinstance(context, Load) else None


@dataclass(frozen=True)
class Issue:
    """One problem, ``loc`` relative to the table that found it. ``refers_to``: a sibling key that ``text``
    names as ``{key}`` (written out with its full path, e.g. ``supervision.backoff_min``)."""
    loc: tuple[str | int, ...]
    text: str
    refers_to: str | None = None


class _Reported:
    def __repr__(self) -> str:
        return "REPORTED"


REPORTED = _Reported()  # prepare() sets a field to this when it has already said what is wrong with it


class Abort(Exception):
    """Raised by ``prepare`` when the rest of the table cannot be checked (its issues are all that is said)."""

    def __init__(self, issues: list[Issue]):
        super().__init__(issues)
        self.issues = issues


def problem(text: str, refers_to: str | None = None) -> PydanticCustomError:
    """The error a validator raises: ``text`` is the problem exactly as the operator reads it."""
    context = {"problem": text} if refers_to is None else {"problem": text, "refers_to": refers_to}
    return PydanticCustomError(OURS, "{problem}", context)


def raise_issues(title: str, issues: Iterable[Issue]) -> NoReturn:
    """Raise every issue at once (a validator may raise this; pydantic prefixes the locations)."""
    raise ValidationError.from_exception_data(
        title, [{"type": problem(i.text, i.refers_to), "loc": i.loc, "input": None} for i in issues],
        hide_input=True)


def describe(error: dict) -> str:
    """Our wording of a pydantic error that no validator of ours worded (a model not built on Section)."""
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in ("model_type", "model_attributes_type", "dict_type", "dataclass_type"):
        return "must be a table"
    if kind in ("list_type", "tuple_type"):
        return "must be an array"
    message = str(error.get("msg") or kind)
    return message[:1].lower() + message[1:]


def table_problems(section: str, model: type[BaseModel], exc: ValidationError) -> list[str]:
    """The errors of a table validated on its own (``[kpi]``, ``[archive]``) as ``<section>.<key>: <what is
    wrong>`` lines; an unknown key with the closest known one."""
    known = sorted(model.model_fields)
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        where = f"{section}.{key}" if key else section  # a problem of the whole table (a model validator)
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
            lines.append(f"{where}: unknown key" + (f"; did you mean {close[0]!r}?" if close else ""))
        elif error["type"] == "missing":
            lines.append(f"{where}: is required")
        else:
            lines.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return lines


def key_path(loc: Iterable[str | int], label: Callable[[tuple], str | None] | None = None) -> str:
    """``("pairs", 0, "strategy", "bid_spread")`` → ``pairs[0].strategy.bid_spread``; ``label`` may name an
    element after its index (``exchanges[0] (binance)``)."""
    text, seen = "", ()
    for part in loc:
        seen += (part,)
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + str(part)
        tag = label(seen) if label is not None else None
        if tag:
            text += f" ({tag})"
    return text


def issues_of(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[Issue]:
    """The errors of ``exc`` as issues (in our wording), located under ``prefix``."""
    return [_issue_of(error, prefix + tuple(error["loc"])) for error in exc.errors()]


def _issue_of(error: dict, loc: tuple[str | int, ...]) -> Issue:
    if error["type"] == OURS:
        return Issue(loc, error["ctx"]["problem"], error["ctx"].get("refers_to"))
    return Issue(loc, describe(error))


def problems_of(exc: ValidationError, label: Callable[[tuple], str | None] | None = None,
                prefix: tuple[str | int, ...] = ()) -> list[str]:
    """Every error of ``exc`` as one ``<key path>: <what is wrong>`` line, in the order found (the lines
    ConfigError and StrategyParamsError carry). ``prefix``: where the validated table sits in the file."""
    lines = []
    for issue in issues_of(exc, prefix):
        text = issue.text
        if issue.refers_to:
            text = text.replace("{key}", key_path(issue.loc[:-1] + (issue.refers_to,), label))
        key = key_path(issue.loc, label)
        lines.append(f"{key}: {text}" if key else text)
    return lines


class Section(BaseModel):
    """A table of the config file (see the module docstring). Subclasses declare fields and may override
    ``prepare``, ``checks`` and the class variables below."""

    # Fields are set by name in Python; a file's keys are renamed to them by _every_problem (validation_alias).
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, validate_by_name=True,
                              validate_by_alias=False)

    file_only: ClassVar[frozenset[str]] = frozenset()  # keys prepare() turns into fields (offered as suggestions)
    internal: ClassVar[frozenset[str]] = frozenset()   # fields a config file cannot set

    @classmethod
    def prepare(cls, data: dict[str, Any], load: Load) -> list[Issue]:
        """Turn the file's own keys of ``data`` (changed in place) into field values; the issues found.
        Raise Abort to check nothing else of this table."""
        return []

    @classmethod
    def checks(cls, values: Mapping[str, Any], data: dict[str, Any]) -> list[Issue]:
        """Problems between fields. ``values``: every field that passed its own check (defaults included);
        ``data``: the table as given (by field name)."""
        return []

    @classmethod
    def missing_text(cls, name: str) -> str:
        """What is said of the required field ``name`` when it is left out."""
        return "is required"

    @classmethod
    def unknown_text(cls, key: str, close: str | None) -> str:
        return "unknown key" + (f"; did you mean {close!r}?" if close else "")

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler, info: ValidationInfo):
        if not isinstance(data, dict):
            return handler(data)  # an instance, or not a table (pydantic says so; see describe)
        data = dict(data)
        issues: list[Issue] = []
        reported: set[str] = set()
        load = loading(info)
        if load is not None:
            try:
                prepared = cls.prepare(data, load)
            except Abort as stop:
                raise_issues(cls.__name__, cls._unknown_keys(data) + stop.issues)
            issues = cls._unknown_keys(data) + prepared
            names = _file_keys(cls)
            data = {names.get(key, key): value for key, value in data.items()}
            reported = {key for key, value in data.items() if value is REPORTED}
            data = {key: value for key, value in data.items() if key not in reported}
        try:
            model = handler(data)
        except ValidationError as exc:
            model, errors = None, [e for e in exc.errors() if not (e["type"] == "missing" and e["loc"][0] in reported)]
        else:
            errors = []
        issues += [cls._issue(error, by_file_key=load is not None) for error in errors]
        failed = {error["loc"][0] for error in errors if error["loc"]} | reported
        values = dict(model) if model is not None else _ValidValues(cls, data, failed, info.context)
        issues += cls.checks(values, data)
        if issues:
            raise_issues(cls.__name__, issues)
        return model

    @classmethod
    def _unknown_keys(cls, data: dict[str, Any]) -> list[Issue]:
        """Issues for the keys of a file's table that are none of ours (removed from ``data``)."""
        known = file_keys(cls)
        issues = []
        for key in [k for k in data if k not in known]:
            close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.7)
            issues.append(Issue((key,), cls.unknown_text(str(key), close[0] if close else None)))
            del data[key]
        return issues

    @classmethod
    def _issue(cls, error: dict, by_file_key: bool) -> Issue:
        """One error of this table's fields, in our words; located by the file's keys while loading one."""
        loc = tuple(error["loc"])
        if len(loc) == 1 and error["type"] == "extra_forbidden":
            return cls._unknown_keys({loc[0]: None})[0]
        name = loc[0] if loc else None
        if by_file_key and isinstance(name, str):
            loc = (_file_name(cls, name),) + loc[1:]
        if len(loc) == 1 and error["type"] == "missing":
            return Issue(loc, cls.missing_text(name))
        return _issue_of(error, loc)


class _ValidValues(Mapping):
    """The fields of a table that pass their own check (given or default), when some other field did not;
    worked out when checks() first looks (the fields are validated once more, one by one)."""

    def __init__(self, cls: type[Section], data: dict[str, Any], failed: set, context: Any):
        self._args = cls, data, failed, context

    @functools.cached_property
    def _values(self) -> dict[str, Any]:
        cls, data, failed, context = self._args
        values = {}
        for name, field in cls.model_fields.items():
            if name in failed:
                continue
            if name in data:
                try:
                    values[name] = _field_adapter(cls, name).validate_python(data[name], context=context)
                except ValidationError:
                    continue
            elif not field.is_required():
                values[name] = field.get_default(call_default_factory=True)
        return values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def file_keys(cls: type[Section]) -> frozenset[str]:
    """Every key a file may write in this table."""
    return frozenset(_file_keys(cls)) | cls.file_only


@functools.cache
def _file_keys(cls: type[Section]) -> dict[str, str]:
    """key in the file → field name, for every field a file may set."""
    return {(field.validation_alias if isinstance(field.validation_alias, str) else name): name
            for name, field in cls.model_fields.items() if name not in cls.internal}


def _file_name(cls: type[Section], name: str) -> str:
    field = cls.model_fields.get(name)
    return field.validation_alias if field is not None and isinstance(field.validation_alias, str) else name


@functools.cache
def _field_adapter(cls: type[Section], name: str) -> TypeAdapter:
    field = cls.model_fields[name]
    return TypeAdapter(Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation)
