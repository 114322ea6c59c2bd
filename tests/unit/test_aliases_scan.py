"""The whole-file scan of ``parse_aliases`` reads every file as the per-line reader does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_mail.core.formats.aliases.parse import (
    MAX_LINE_BYTES,
    Recipient,
    parse_aliases,
    parse_each_line,
)

PATH = "chasquid/domains/d.test/aliases"
DOMAINS = st.sampled_from(
    ["d.test", "D.Test", "xn--and-6ma2c.example", "bad..dom", "a@b.test", "", "ü.test"]
)
# A line is built as the scan takes it, then given at most one thing that it must not take.
WORDS = st.sampled_from(["a", "bob", "z9", "_", ".", "+", "=", "*", "-"])
AT_DOMAIN = st.sampled_from(["", "", "@r.test", "@x.r-2.test"])
BAD_AT_DOMAIN = st.sampled_from(["@", "@r..test", "@x.", "@.x", "@a@b", "@xn--x", "@R.test", "@-"])
SPACES = st.sampled_from(["", " ", "  ", "\t"])
# Around a line: what chasquid trims (Go's white space) and what it keeps, alike to the eye.
EDGES = st.sampled_from(["\r", "\v", "\f", "\x85", "\u00a0", "\x00", "\x1c", "\x7f", "\r\r"])
ODD = st.sampled_from(
    [*"AÉé\u0130\ufeff,:|#@\x00\v\r\u00a0\u2028 ", "xn--", " via ", "..", "@@", "|/bin/x", ", ,"]
)


@st.composite
def alias_lines(draw: st.DrawFn) -> str:
    def word() -> str:
        return "".join(draw(st.lists(WORDS, min_size=1, max_size=2)))

    items = [word() + draw(AT_DOMAIN) for _ in range(draw(st.integers(1, 3)))]
    change = draw(st.sampled_from(["none", "first", "last", "domain", "insert"]))
    if change == "domain":
        items[-1] = items[-1].partition("@")[0] + draw(BAD_AT_DOMAIN)
    separator = draw(SPACES) + "," + draw(SPACES)
    line = [draw(SPACES), word(), draw(SPACES), ":", draw(SPACES), separator.join(items)]
    line.append(draw(SPACES))
    if change in ("first", "last"):
        line.insert(0 if change == "first" else len(line), draw(EDGES))
    text = "".join(line)
    if change == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(ODD) + text[at:]
    return text


LINES = st.one_of(
    alias_lines(),
    st.text(alphabet="ab.+*@:|, #\t\r\x00éX\ufeff", max_size=30),
    st.sampled_from(["", "# comment: a", "  ", "p: | /bin/x -y", "x: y\udcff"]),
)


@st.composite
def files(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(LINES, max_size=12))
    text = "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n", "\n\n"]))
    return text.encode("utf-8", "surrogateescape")


@settings(max_examples=1000, deadline=None)
@given(alias_lines(), DOMAINS)
def test_one_line_reads_like_the_per_line_reader(line: str, domain: str) -> None:
    data = line.encode("utf-8", "surrogateescape")
    assert parse_aliases(data, PATH, domain) == parse_each_line(data, PATH, domain)


@settings(max_examples=400, deadline=None)
@given(files(), DOMAINS)
def test_the_scan_reads_like_the_per_line_reader(data: bytes, domain: str) -> None:
    assert parse_aliases(data, PATH, domain) == parse_each_line(data, PATH, domain)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), DOMAINS)
def test_the_scan_reads_arbitrary_bytes_like_the_per_line_reader(data: bytes, domain: str) -> None:
    assert parse_aliases(data, PATH, domain) == parse_each_line(data, PATH, domain)


def test_the_usual_lines_are_read_as_written_with_the_files_domain_added() -> None:
    data = b"postmaster: user0\n\nalias1:user1,someone1@remote.example \r\n  *\t: u\n"
    parsed = parse_aliases(data, PATH, "D.Test")
    assert parsed == parse_each_line(data, PATH, "D.Test")
    assert parsed.problems == ()
    assert [(a.name, a.recipients, a.line) for a in parsed.aliases] == [
        ("postmaster", (Recipient("user0@d.test"),), 1),
        ("alias1", (Recipient("user1@d.test"), Recipient("someone1@remote.example")), 3),
        ("*", (Recipient("u@d.test"),), 4),
    ]


def test_a_usual_line_that_is_too_long_refuses_the_file_as_any_other() -> None:
    for size in (MAX_LINE_BYTES, MAX_LINE_BYTES + 1):
        data = b"a: b\n" + b"c: " + b"x" * (size - 3) + b"\nd: e"
        parsed = parse_aliases(data, PATH, "d.test")
        assert parsed == parse_each_line(data, PATH, "d.test")
        assert [p.code for p in parsed.problems] == (
            [] if size == MAX_LINE_BYTES else ["aliases.line-too-long"]
        )
