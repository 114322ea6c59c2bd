"""YAML bounds: size before decoding, depth and values before composing, each at its line.

Memory is measured with ``tracemalloc`` (every Python object libyaml's
composer makes is traced): composing the 1 MiB flow list below costs about
160 MB, so a peak of a few times the text's size shows no node graph was built.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import pytest
import yaml

from gitops_mail.core.manifest.model import parse_manifest
from gitops_mail.core.problems import Problem
from gitops_mail.core.yamldoc.document import MAX_BYTES, load_yaml

F = "gitops-mail.yaml"
MIB = 1 << 20
needs_libyaml = pytest.mark.skipif(
    not yaml.__with_libyaml__, reason="the pre-pass is measured on libyaml's parser"
)


def problems_of(text: str) -> list[Problem]:
    doc, found = load_yaml(text.encode(), F)
    assert doc is None
    return found


def peak_of(call: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def laughs(levels: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_file_over_the_byte_limit_is_refused_at_the_line_that_passes_it() -> None:
    text = "version: 1\nx:\n" + "- a\n" * (3 << 20)  # a 12 MiB YAML list
    data = text.encode()
    peak = peak_of(lambda: load_yaml(data, F))
    assert problems_of(text) == [
        Problem(
            F,
            262_143,
            "yaml.file-size",
            "the file is larger than 1,048,576 bytes, the limit for a YAML file; it passes the "
            "limit on this line",
            "a file like this one needs a few kB: remove what does not belong in it",
        )
    ]
    assert peak < MIB  # not even decoded


def test_the_manifest_says_where_users_and_aliases_belong() -> None:
    manifest, found = parse_manifest(b"version: 1\n" + b"# padding\n" * (MAX_BYTES // 10))
    assert manifest is None
    assert [(p.line, p.code) for p in found] == [(104_858, "yaml.file-size")]
    assert found[0].hint == (
        "a manifest needs a few kB: users and aliases belong in chasquid's files "
        "(chasquid/domains/<domain>/users, aliases)"
    )


def test_a_file_at_the_byte_limit_is_read() -> None:
    text = "version: 1\n#" + "x" * (MAX_BYTES - len("version: 1\n#") - 1) + "\n"
    assert len(text.encode()) == MAX_BYTES
    doc, found = load_yaml(text.encode(), F)
    assert found == []
    assert doc is not None
    assert doc.data == {"version": 1}


@needs_libyaml
def test_too_many_values_stop_before_any_node_is_built() -> None:
    text = "version: 1\nx: [" + "a," * (MAX_BYTES // 2 - 20) + "]\n"  # under 1 MiB, 500k values
    data = text.encode()
    peak = peak_of(lambda: load_yaml(data, F))
    assert problems_of(text) == [
        Problem(F, 2, "yaml.too-large", "the document is more than 100000 values after aliases")
    ]
    assert peak < 8 * MIB


@needs_libyaml
def test_a_billion_laughs_stop_at_the_alias_that_passes_the_limit() -> None:
    data = laughs(9).encode()  # a billion values once expanded, 500 bytes written
    peak = peak_of(lambda: load_yaml(data, F))
    assert problems_of(laughs(9)) == [
        Problem(F, 5, "yaml.too-large", "the document is more than 100000 values after aliases")
    ]
    assert peak < MIB


def test_fewer_laughs_are_read() -> None:
    doc, found = load_yaml(laughs(4).encode(), F)  # 11,110 values for l3
    assert found == []
    assert doc is not None


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: " + "[" * 101 + "]" * 101 + "\n", 1),
        ("a:\n" + "".join(f"{'  ' * i}b{i}:\n" for i in range(1, 102)) + "  " * 102 + "c\n", 102),
        # depth through an alias: 60 levels, used 50 levels down
        ("a: &d " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 50 + "*d" + "]" * 50 + "\n", 2),
    ],
)
def test_too_deep_is_found_where_the_depth_passes_the_limit(text: str, line: int) -> None:
    assert problems_of(text) == [
        Problem(F, line, "yaml.too-deep", "the document is nested more than 100 levels deep")
    ]


def test_keys_are_not_values_and_merges_count_what_they_bring() -> None:
    entries = "".join(f"  k{i}: v\n" for i in range(60_000))  # 60,000 values, 120,000 scalars
    doc, found = load_yaml(f"a:\n{entries}".encode(), F)
    assert found == []
    assert doc is not None
    merged = f"base: &b\n{entries}one:\n  <<: *b\ntwo:\n  <<: *b\n"
    assert problems_of(merged)[0].code == "yaml.too-large"
