"""YAML with line numbers, and JSON Schema errors in words at the right line."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml
from support.tools import IN_CI

from gitops_mail.core.problems import Problem, Severity
from gitops_mail.core.yamldoc.document import YamlDoc, format_path, load_yaml
from gitops_mail.core.yamldoc.schema import schema_problems

F = "settings.yaml"
needs_libyaml = pytest.mark.skipif(
    not yaml.__with_libyaml__ and not IN_CI, reason="messages are libyaml's (PyYAML built with it)"
)


def load(text: str | bytes) -> tuple[YamlDoc | None, list[Problem]]:
    return load_yaml(text.encode() if isinstance(text, str) else text, F)


def only(text: str | bytes) -> Problem:
    _, problems = load(text)
    assert len(problems) == 1, problems
    return problems[0]


def test_data_and_the_line_of_every_key_path() -> None:
    doc, problems = load("a: 1\nb:\n  c: [x, y]\n  d:\n    - e: true\n    -   f: ~\n")
    assert problems == []
    assert doc is not None
    assert doc.data == {"a": 1, "b": {"c": ["x", "y"], "d": [{"e": True}, {"f": None}]}}
    assert doc.lines == {
        (): 1,
        ("a",): 1,
        ("b",): 2,
        ("b", "c"): 3,
        ("b", "c", 0): 3,
        ("b", "c", 1): 3,
        ("b", "d"): 4,
        ("b", "d", 0): 5,
        ("b", "d", 0, "e"): 5,
        ("b", "d", 1): 6,
        ("b", "d", 1, "f"): 6,
    }


def test_line_of_falls_back_to_the_nearest_existing_ancestor() -> None:
    doc, _ = load("a: 1\nb:\n  c: 2\n")
    assert doc is not None
    assert doc.line_of(("b", "c")) == 3
    assert doc.line_of(("b", "missing", 0)) == 2
    assert doc.line_of(["nothing", "here"]) == 1
    assert doc.line_of(()) == 1


def test_format_path() -> None:
    assert format_path(("domains", "example.com", "dkim", "algorithm")) == (
        "domains.example.com.dkim.algorithm"
    )
    assert format_path(("certificates", 0, "name")) == "certificates[0].name"
    assert format_path((0, "x")) == "[0].x"
    assert format_path(()) == ""


def test_keys_are_the_text_as_written() -> None:
    doc, problems = load("on: 1\n1: x\nnull: y\n'quoted': z\n")
    assert problems == []
    assert doc is not None
    assert doc.data == {"on": 1, "1": "x", "null": "y", "quoted": "z"}


def test_anchors_aliases_and_merge_keys() -> None:
    text = "base: &b {x: 1, y: 2}\ncopy: *b\nmerged:\n  <<: *b\n  y: 3\n"
    doc, problems = load(text)
    assert problems == []
    assert doc is not None
    assert doc.data == {
        "base": {"x": 1, "y": 2},
        "copy": {"x": 1, "y": 2},
        "merged": {"x": 1, "y": 3},
    }
    assert doc.lines[("copy", "x")] == 1  # where the aliased value is written
    assert doc.lines[("merged", "y")] == 5  # the override, not the merged key
    assert doc.lines[("merged", "x")] == 1


def test_a_byte_order_mark_is_fine() -> None:
    doc, problems = load(b"\xef\xbb\xbfa: 1\n")
    assert problems == []
    assert doc is not None
    assert doc.data == {"a": 1}


@needs_libyaml
def test_syntax_error_with_line_and_column() -> None:
    assert only("a: 1\nb: [1, 2\nc: 3\n") == Problem(
        F,
        3,
        "yaml.syntax",
        "invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence)",
        "close the list with ']'",
        Severity.ERROR,
        2,
    )


@needs_libyaml
def test_tab_indentation() -> None:
    problem = only("a:\n\tb: 2\n")
    assert problem == Problem(
        F,
        2,
        "yaml.syntax",
        "invalid YAML: found character that cannot start any token"
        " (while scanning for the next token)",
        "indent with spaces: YAML does not allow tabs in indentation",
        Severity.ERROR,
        1,
    )
    assert problem.format() == (
        "settings.yaml:2:1: error: invalid YAML: found character that cannot start any token"
        " (while scanning for the next token)\n"
        "    hint: indent with spaces: YAML does not allow tabs in indentation"
    )


@needs_libyaml
def test_a_value_with_a_colon_needs_quotes() -> None:
    problem = only("a: b: c\n")
    assert (problem.line, problem.column) == (1, 5)
    assert problem.message == "invalid YAML: mapping values are not allowed in this context"
    assert problem.hint == "quote a value that contains ': '"


@needs_libyaml
def test_two_documents_and_an_undefined_alias() -> None:
    problem = only("a: 1\n---\nb: 2\n")
    assert (problem.line, problem.code) == (2, "yaml.syntax")
    assert problem.message == (
        "invalid YAML: but found another document (expected a single document in the stream)"
    )
    assert problem.hint == "keep a single document: remove the second '---'"
    problem = only("a: 1\nb: *nope\n")
    assert (problem.line, problem.column) == (2, 4)
    assert problem.message == "invalid YAML: found undefined alias"
    assert problem.hint == "define the anchor (&name) before using it (*name)"


def test_duplicate_keys_are_an_error_naming_both_lines() -> None:
    doc, problems = load("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\na: 4\n")
    assert doc is not None
    assert doc.data == {"a": 4, "b": {"c": 3, "d": 2}}
    hint = "remove one of them: YAML would silently keep only the last"
    assert problems == [
        Problem(F, 5, "yaml.duplicate-key", "At 'b.c': duplicate key 'c' (lines 3 and 5)", hint),
        Problem(F, 6, "yaml.duplicate-key", "At 'a': duplicate key 'a' (lines 1 and 6)", hint),
    ]


def test_keys_differing_only_in_quotes_are_duplicates() -> None:
    _, problems = load("a: 1\n'a': 2\n")
    assert [p.message for p in problems] == ["At 'a': duplicate key 'a' (lines 1 and 2)"]


def test_not_utf8() -> None:
    assert only(b"a: 1\nb: caf\xe9\n") == Problem(
        F,
        2,
        "yaml.encoding",
        "the file is not valid UTF-8 (byte 0xe9)",
        "save the file as UTF-8",
        Severity.ERROR,
        7,
    )


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "~\n"])
def test_empty(text: str) -> None:
    assert only(text) == Problem(F, None, "yaml.empty", "the file is empty", "write the settings")


@pytest.mark.parametrize(
    ("text", "found", "line"),
    [("- a\n- b\n", "a list", 1), ("\n\njust text\n", "a single value", 3)],
)
def test_top_level_must_be_a_mapping(text: str, found: str, line: int) -> None:
    message = f"the top level must be a mapping of 'key: value' lines, found {found}"
    assert only(text) == Problem(F, line, "yaml.not-mapping", message)


def test_control_character() -> None:
    problem = only("a: 1\nb: x\x07y\n")
    assert problem == Problem(
        F,
        2,
        "yaml.character",
        "the file contains the control character U+0007, which YAML does not allow",
        "remove it (often an invisible character pasted with the text)",
        Severity.ERROR,
        5,
    )


def test_unknown_tag_and_bad_timestamp_keep_the_document() -> None:
    doc, problems = load("a: !secret x\nb: 2024-13-45\nc: 1\n")
    assert doc is not None
    assert doc.data == {"a": "x", "b": "2024-13-45", "c": 1}
    assert [(p.line, p.code) for p in problems] == [(1, "yaml.value"), (2, "yaml.value")]
    assert problems[0].message.startswith("cannot read the value 'x' (!secret): ")
    assert problems[1].message == (
        "cannot read the value '2024-13-45' (tag:yaml.org,2002:timestamp): month must be in 1..12"
    )
    assert problems[1].hint == "quote the value if it is meant as text"


def test_complex_keys_are_refused() -> None:
    doc, problems = load("? [a, b]\n: c\nd: 1\n")
    assert doc is not None
    assert doc.data == {"d": 1}
    assert problems == [Problem(F, 1, "yaml.complex-key", "a list or mapping cannot be a key")]


def test_bad_merge_value() -> None:
    doc, problems = load("a:\n  <<: 3\n  b: 1\n")
    assert doc is not None
    assert doc.data == {"a": {"b": 1}}
    assert [(p.line, p.code) for p in problems] == [(2, "yaml.merge")]
    assert problems[0].message.startswith("cannot merge with '<<': expected a mapping")


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("a: &x [1, *x]\n", "yaml.recursive", "an alias refers to a value that contains it"),
        ("a: &x {b: *x}\n", "yaml.recursive", "an alias refers to a value that contains it"),
        ("a: " + "[" * 101 + "]" * 101 + "\n", "yaml.too-deep", "nested more than 100 levels deep"),
    ],
)
def test_documents_that_cannot_be_expanded(text: str, code: str, message: str) -> None:
    assert only(text) == Problem(F, 1, code, f"the document is {message}")


def test_billion_laughs_stop_early() -> None:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    problem = only("\n".join(lines) + "\n")
    assert problem.code == "yaml.too-large"
    assert problem.message == "the document is more than 100000 values after aliases"


# JSON Schema errors: one problem per error, in words, at the offending key.

SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "name"],
    "properties": {
        "version": {"const": 1, "description": "This program reads version 1."},
        "name": {"type": "string", "minLength": 1, "description": "Who you are."},
        "label": {"type": "string"},
        "mode": {"enum": ["enforce", "testing", "none"]},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "ratio": {"type": "number", "exclusiveMinimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True},
        "version_text": {"type": "string", "pattern": "^[0-9]+$"},
        "release": {
            "type": "string",
            "pattern": "^[0-9]+\\.[0-9]+$",
            "patternErrorMessage": 'must be "MAJOR.MINOR"',
        },
        "enabled": {"type": "boolean"},
        "nested": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {"alpha": {"type": "string"}, "beta": {"type": "string"}},
        },
        "source": {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
        },
    },
}


def schema_check(text: str, schema: dict[str, Any] | None = None) -> list[Problem]:
    doc, problems = load(text)
    assert doc is not None
    assert problems == []
    return schema_problems(doc, SCHEMA if schema is None else schema, F)


def messages(problems: list[Problem]) -> list[tuple[int | None, str, str, str]]:
    return [(p.line, p.code, p.message, p.hint) for p in problems]


def test_a_valid_document_has_no_problems_and_is_left_alone() -> None:
    doc, _ = load("version: 1\nname: x\ntags: [a]\n")
    assert doc is not None
    assert schema_problems(doc, SCHEMA, F) == []
    assert doc.data == {"version": 1, "name": "x", "tags": ["a"]}  # no defaults filled in


def test_every_error_at_once_at_its_line() -> None:
    text = (
        "version: 2\n"
        "mode: enforc\n"
        "port: 70000\n"
        "ratio: 0\n"
        "tags: []\n"
        "enabled: 'yes'\n"
        "nested:\n"
        "  alpa: x\n"
        "  gamma: y\n"
        "release: 1.2.3\n"
        "version_text: v1\n"
    )
    assert messages(schema_check(text)) == [
        (1, "schema.const", "At 'version': must be 1, found 2", "This program reads version 1."),
        (1, "schema.required", "At the top level: missing required key 'name'", "Who you are."),
        (
            2,
            "schema.enum",
            "At 'mode': 'enforc' is not one of the allowed values",
            "did you mean 'enforce'? allowed values: enforce, testing, none",
        ),
        (3, "schema.maximum", "At 'port': 70000 is greater than the maximum 65535", ""),
        (4, "schema.exclusive-minimum", "At 'ratio': 0 is not greater than 0", ""),
        (5, "schema.min-items", "At 'tags': must not be empty", ""),
        (
            6,
            "schema.type",
            "At 'enabled': expected true or false, found the string 'yes'",
            "write true or false, without quotes",
        ),
        (
            8,
            "schema.unknown-key",
            "At 'nested.alpa': unknown key 'alpa'",
            "did you mean 'alpha'? known keys here: alpha, beta",
        ),
        (
            9,
            "schema.unknown-key",
            "At 'nested.gamma': unknown key 'gamma'",
            "known keys here: alpha, beta",
        ),
        (10, "schema.pattern", "At 'release': '1.2.3' must be \"MAJOR.MINOR\"", ""),
        (
            11,
            "schema.pattern",
            "At 'version_text': 'v1' does not match the pattern ^[0-9]+$",
            "",
        ),
    ]


def test_missing_version_says_what_to_add() -> None:
    assert messages(schema_check("name: x\n")) == [
        (
            1,
            "schema.required",
            "At the top level: missing required key 'version'",
            "add 'version: 1'",
        )
    ]


@pytest.mark.parametrize(
    ("line", "message", "hint"),
    [
        (
            "label: 1.10",
            "At 'label': expected a string, found the number 1.1",
            "put the value in quotes so YAML reads it as a string",
        ),
        (
            "label: 2024-01-02",
            "At 'label': expected a string, found the date 2024-01-02",
            "put the value in quotes so YAML reads it as a string",
        ),
        (
            "tags: solo",
            "At 'tags': expected a list, found the string 'solo'",
            "write a list: [solo]",
        ),
        (
            "tags:",
            "At 'tags': expected a list, found an empty value",
            "write a list, like [a, b], or remove the key",
        ),
        (
            "port: '25'",
            "At 'port': expected a whole number, found the string '25'",
            "write the number without quotes",
        ),
        ("port: 2.5", "At 'port': expected a whole number, found the number 2.5", ""),
        ("enabled: 1", "At 'enabled': expected true or false, found the number 1", ""),
        (
            "mode: off",
            "At 'mode': false is not one of the allowed values",
            "put the value in quotes; allowed values: enforce, testing, none",
        ),
        ("tags: [a, a]", "At 'tags': has duplicate items", "remove the repeated ones"),
        (
            "tags: [a, 1]",
            "At 'tags[1]': expected a string, found the number 1",
            "put the value in quotes so YAML reads it as a string",
        ),
        ("source: [a]", "At 'source': expected a mapping, found a list", ""),
        ("nested: x", "At 'nested': expected a mapping or nothing, found the string 'x'", ""),
    ],
)
def test_type_and_value_errors(line: str, message: str, hint: str) -> None:
    problems = schema_check(f"version: 1\nname: x\n{line}\n")
    assert messages(problems) == [(3, problems[0].code, message, hint)]


def test_exactly_one_of() -> None:
    problems = schema_check("version: 1\nname: x\nsource:\n  a: x\n  b: y\n")
    assert messages(problems) == [
        (
            5,
            "schema.one-of",
            "At 'source.b': has 'a' and 'b', but only one of 'a' or 'b' is allowed",
            "keep one and remove the others",
        )
    ]
    problems = schema_check("version: 1\nname: x\nsource: {}\n")
    assert messages(problems) == [
        (
            3,
            "schema.one-of",
            "At 'source': needs exactly one of 'a' or 'b', found none",
            "add one of them",
        )
    ]


def test_problems_are_in_line_order_and_deduplicated() -> None:
    problems = schema_check("port: 0\nversion: 3\nname: ''\n")
    assert [(p.line, p.code) for p in problems] == [
        (1, "schema.minimum"),
        (2, "schema.const"),
        (3, "schema.min-length"),
    ]


def test_a_schema_without_draft_and_a_true_constant() -> None:
    schema = {"type": "object", "properties": {"flag": {"const": True}}}
    assert schema_check("flag: true\n", schema) == []
    assert messages(schema_check("flag: 1\n", schema)) == [
        (1, "schema.const", "At 'flag': must be true, found 1", "")
    ]


def test_when_the_validators_disagree_the_document_is_still_refused() -> None:
    # fastjsonschema reads "$" as end of text, jsonschema (Python re) also before a final newline
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x$"}}}
    assert messages(schema_check('a: "x\\n"\n', schema)) == [
        (1, "schema.invalid", "At the top level: does not match the schema", "")
    ]


def test_valid_documents_never_import_jsonschema() -> None:
    code = (
        "import sys\n"
        "from gitops_mail.core.manifest.model import parse_manifest\n"
        "manifest, problems = parse_manifest(b'version: 1\\n')\n"
        "assert manifest is not None and problems == [], problems\n"
        "assert 'jsonschema' not in sys.modules\n"
        "assert 'fastjsonschema' not in sys.modules\n"
        "assert 'git' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
