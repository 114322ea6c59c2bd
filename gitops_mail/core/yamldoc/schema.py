"""JSON Schema checks of a ``YamlDoc``: a fast yes/no (``fast``), then every error in words.

Only an invalid document imports ``jsonschema`` (slow to import), whose
``iter_errors`` lists every error; each becomes a ``Problem`` that says
``At 'domains.example.com.dkim.algorithm': ...`` at the line of that key, with a
hint where one helps (allowed values, the closest known key, how to quote).
"""

from __future__ import annotations

import datetime
import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from gitops_mail.core.problems import Problem
from gitops_mail.core.yamldoc import fast
from gitops_mail.core.yamldoc.document import KeyPath, YamlDoc, problem_at

if TYPE_CHECKING:
    from jsonschema import ValidationError

_EXPECTED = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "nothing",
}

_QUOTE = "put the value in quotes so YAML reads it as a string"


def schema_problems(doc: YamlDoc, schema: Mapping[str, object], path: str) -> list[Problem]:
    """Every way ``doc`` breaks ``schema``, each at the line of the offending key.

    A compiled ``fastjsonschema`` validator answers the common case (valid)
    quickly; only an invalid document pays for ``jsonschema``, which lists
    every error at once.
    """
    if fast.fast_valid(schema, doc.data):
        return []
    return all_problems(doc, schema, path)


def all_problems(doc: YamlDoc, schema: Mapping[str, object], file: str) -> list[Problem]:
    """Every schema error in ``doc``, in line order."""
    import jsonschema  # noqa: PLC0415 - slow to import; only invalid documents need it

    validator = jsonschema.validators.validator_for(schema)(schema)
    problems: list[Problem] = []
    for err in validator.iter_errors(cast(Any, doc.data)):
        problems.extend(_problems(_Error.of(err), doc, file))
    if not problems:
        problems.append(problem_at(doc, file, (), "schema.invalid", "does not match the schema"))
    return sorted(dict.fromkeys(problems), key=lambda p: (p.line or 0, p.message))


@dataclass(frozen=True)
class _Error:
    """What this module needs of a ``jsonschema`` error, with plain types."""

    path: KeyPath
    keyword: str
    rule: Any
    instance: Any
    schema: Mapping[str, Any]
    text: str

    @classmethod
    def of(cls, err: ValidationError) -> _Error:
        schema = err.schema if isinstance(err.schema, Mapping) else {}
        path = tuple(err.absolute_path)
        return cls(path, str(err.validator), err.validator_value, err.instance, schema, err.message)


def _problems(err: _Error, doc: YamlDoc, file: str) -> list[Problem]:
    if err.keyword == "additionalProperties" and err.rule is False:
        return _unknown_keys(err, doc, file)
    if err.keyword == "required":
        return _missing_keys(err, doc, file)
    keys = _alternatives(err.rule) if err.keyword == "oneOf" else None
    if keys is not None:  # a wrong type is reported by the "type" error
        return [_one_of(err, doc, file, keys)] if isinstance(err.instance, Mapping) else []
    describe = _DESCRIBE.get(err.keyword)
    message, hint = describe(err) if describe else (err.text, "")
    code = "schema." + _kebab(err.keyword)
    return [problem_at(doc, file, err.path, code, message, hint=hint)]


def _kebab(keyword: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"-\1", keyword).lower()


def _unknown_keys(err: _Error, doc: YamlDoc, file: str) -> list[Problem]:
    known = [str(k) for k in err.schema.get("properties", {})]
    patterns = [str(p) for p in err.schema.get("patternProperties", {})]
    instance = err.instance if isinstance(err.instance, Mapping) else {}
    problems = []
    for key in instance:
        if key in known or any(re.search(p, str(key)) for p in patterns):
            continue
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        hint += ("known keys here: " + ", ".join(sorted(known))) if known else "remove it"
        where = (*err.path, key)
        problems.append(
            problem_at(doc, file, where, "schema.unknown-key", f"unknown key '{key}'", hint=hint)
        )
    return problems


def _missing_keys(err: _Error, doc: YamlDoc, file: str) -> list[Problem]:
    instance = err.instance if isinstance(err.instance, Mapping) else {}
    properties = err.schema.get("properties", {})
    problems = []
    for key in err.rule:
        if key in instance:
            continue
        spec = properties.get(key, {})
        hint = f"add '{key}: {_literal(spec['const'])}'" if "const" in spec else ""
        hint = hint or str(spec.get("description", ""))
        message = f"missing required key '{key}'"
        problems.append(problem_at(doc, file, err.path, "schema.required", message, hint=hint))
    return problems


def _alternatives(options: object) -> list[str] | None:
    """The keys of a ``oneOf`` of ``{"required": [key]}`` branches: exactly one of them."""
    if not isinstance(options, list):
        return None
    keys = []
    for option in options:
        if not (isinstance(option, Mapping) and list(option) == ["required"]):
            return None
        if len(option["required"]) != 1:
            return None
        keys.append(str(option["required"][0]))
    return keys


def _one_of(err: _Error, doc: YamlDoc, file: str, keys: list[str]) -> Problem:
    present = [key for key in keys if key in err.instance]
    choices = _join(keys, "or")
    if not present:
        message = f"needs exactly one of {choices}, found none"
        return problem_at(doc, file, err.path, "schema.one-of", message, hint="add one of them")
    message = f"has {_join(present, 'and')}, but only one of {choices} is allowed"
    hint = "keep one and remove the others"
    return problem_at(doc, file, (*err.path, present[1]), "schema.one-of", message, hint=hint)


def _join(items: Sequence[str], word: str) -> str:
    quoted = [f"'{item}'" for item in items]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {word} {quoted[-1]}"


def _literal(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    return "an empty value" if value is None else _literal(value) if _plain(value) else str(value)


def _plain(value: object) -> bool:
    return isinstance(value, bool | int | float | list | dict)


def _found(value: object) -> str:
    if isinstance(value, bool):
        return f"{_literal(value)} (true/false)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, datetime.date):
        return f"the date {value}"
    kinds: dict[type, str] = {str: f"the string {value!r}", list: "a list", dict: "a mapping"}
    kinds[bytes] = "binary data"
    return kinds.get(type(value), "an empty value" if value is None else type(value).__name__)


def _type(err: _Error) -> tuple[str, str]:
    types = err.rule if isinstance(err.rule, list) else [err.rule]
    expected = " or ".join(_EXPECTED.get(str(t), str(t)) for t in types)
    return f"expected {expected}, found {_found(err.instance)}", _type_hint(types, err.instance)


def _type_hint(types: list[Any], value: object) -> str:
    scalar = not isinstance(value, list | dict | type(None))
    text = value if isinstance(value, str) else _show(value)
    hints = (
        ("string", scalar and not isinstance(value, str), _QUOTE),
        ("array", scalar, f"write a list: [{text}]"),
        ("array", value is None, "write a list, like [a, b], or remove the key"),
        ("array", isinstance(value, dict), "write a list: start each item with '- '"),
        ("boolean", isinstance(value, str), "write true or false, without quotes"),
        ("integer", isinstance(value, str), "write the number without quotes"),
        ("number", isinstance(value, str), "write the number without quotes"),
        ("object", value is None, "indent the settings under the key, or remove the key"),
    )
    return next((hint for kind, applies, hint in hints if applies and kind in types), "")


def _enum(err: _Error) -> tuple[str, str]:
    allowed = list(err.rule)
    if len(allowed) == 1:
        return f"must be {_show(allowed[0])}, found {_show(err.instance)}", ""
    value = err.instance
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value, [str(a) for a in allowed], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
    elif all(isinstance(a, str) for a in allowed):
        hint = "put the value in quotes; "
    hint += "allowed values: " + ", ".join(_literal(a) for a in allowed)
    return f"{_show(value)} is not one of the allowed values", hint


def _const(err: _Error) -> tuple[str, str]:
    message = f"must be {_show(err.rule)}, found {_show(err.instance)}"
    return message, str(err.schema.get("description", ""))


def _pattern(err: _Error) -> tuple[str, str]:
    custom = err.schema.get("patternErrorMessage")
    rule = str(custom) if custom else f"does not match the pattern {err.rule}"
    return f"{_show(err.instance)} {rule}", ""


def _size(err: _Error) -> tuple[str, str]:
    limit = err.rule
    if err.keyword.startswith("min") and limit == 1:
        return "must not be empty", ""
    what = "items" if err.keyword.endswith("Items") else "characters"
    bound = "at least" if err.keyword.startswith("min") else "at most"
    return f"must have {bound} {limit} {what}", ""


_BOUNDS = {
    "minimum": "less than the minimum",
    "maximum": "greater than the maximum",
    "exclusiveMinimum": "not greater than",
    "exclusiveMaximum": "not less than",
}


def _bound(err: _Error) -> tuple[str, str]:
    return f"{_show(err.instance)} is {_BOUNDS[err.keyword]} {err.rule}", ""


_DESCRIBE: dict[str, Callable[[_Error], tuple[str, str]]] = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "pattern": _pattern,
    "uniqueItems": lambda err: ("has duplicate items", "remove the repeated ones"),
    **dict.fromkeys(["minItems", "maxItems", "minLength", "maxLength"], _size),
    **dict.fromkeys(_BOUNDS, _bound),
}
