"""chasquid.conf: parsing as chasquid does, rendering, and diffing effective values."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_mail.core.formats import chasquid_conf
from gitops_mail.core.formats.chasquid_conf import (
    DEFAULTS,
    FIELD_MIN_VERSION,
    LISTEN_FIELDS,
    ChasquidConfig,
    config_changes,
    parse_config,
    render_config,
)
from gitops_mail.core.formats.prototext import go as prototext_go
from gitops_mail.core.formats.prototext import library as textproto
from gitops_mail.core.formats.prototext import plain as prototext_plain
from gitops_mail.core.problems import Problem

PATH = "chasquid/chasquid.conf"
STRING_HINT = 'a string is in quotes on one line; escapes: \\n \\t \\\\ \\" \\xNN \\NNN \\uNNNN'
SYNTAX_HINT = 'write one setting per line as name: value, e.g. hostname: "mail.example.com"'
UNKNOWN_TAIL = "chasquid refuses to start with a field it does not know"
BOOLS = frozenset({"dovecot_auth", "haproxy_incoming"})


def parse_ok(text: str) -> ChasquidConfig:
    cfg, problems = parse_config(text.encode(), PATH)
    assert problems == []
    assert cfg is not None
    return cfg


def parse_bad(data: str | bytes) -> Problem:
    cfg, problems = parse_config(data.encode() if isinstance(data, str) else data, PATH)
    assert cfg is None
    assert len(problems) == 1
    return problems[0]


def test_an_empty_or_commented_file_is_all_defaults():
    cfg = parse_ok('# nothing here\n\n#hostname: "x"\n')

    assert cfg == ChasquidConfig()
    assert cfg.hostname is None
    assert cfg.explicit == frozenset()
    assert cfg.smtp_address == ("systemd",)
    assert cfg.mail_delivery_agent_args == ("-f", "%from%", "-d", "%to_user%")
    assert (cfg.max_data_size_mb, cfg.max_queue_items, cfg.give_up_send_after) == (50, 200, "20h")
    assert (cfg.suffix_separators, cfg.drop_characters) == ("+", ".")
    assert (cfg.data_dir, cfg.mail_log_path) == ("/var/lib/chasquid", "<syslog>")


def test_values_explicit_fields_and_their_lines():
    cfg = parse_ok(
        "# mail\n"
        'hostname: "mail.example.com"\n'
        "max_data_size_mb: 0x20;\n"
        'smtp_address: [":25",\n  "127.0.0.1:2525"]\n'
        'smtp_address: "systemd"\n'
        "dovecot_auth: true\n"
        "mail_delivery_agent_args: 'a' \"b\"\n"
    )

    assert cfg.hostname == "mail.example.com"
    assert cfg.max_data_size_mb == 32
    assert cfg.smtp_address == (":25", "127.0.0.1:2525", "systemd")
    assert cfg.dovecot_auth is True
    assert cfg.mail_delivery_agent_args == ("ab",)
    assert cfg.explicit == {
        "hostname",
        "max_data_size_mb",
        "smtp_address",
        "dovecot_auth",
        "mail_delivery_agent_args",
    }
    assert dict(cfg.lines) == {
        "hostname": 2,
        "max_data_size_mb": 3,
        "smtp_address": 4,
        "dovecot_auth": 7,
        "mail_delivery_agent_args": 8,
    }
    assert cfg.item_lines["smtp_address"] == (4, 5, 6)
    assert dict(cfg.ignored) == {}


def test_values_chasquid_skips_keep_the_default_and_are_recorded():
    cfg = parse_ok(
        'hostname: ""\nmax_data_size_mb: -5\nsmtp_address: []\ndovecot_auth: false\n'
        'data_dir: ""\nmax_queue_items: 0\n'
    )

    assert cfg == ChasquidConfig()
    assert dict(cfg.ignored) == {
        "hostname": "",
        "max_data_size_mb": -5,
        "smtp_address": (),
        "dovecot_auth": False,
        "data_dir": "",
        "max_queue_items": 0,
    }
    assert cfg.lines["max_queue_items"] == 6


def test_optional_fields_take_the_empty_string():
    cfg = parse_ok('suffix_separators: ""\ndrop_characters: ""\n')

    assert (cfg.suffix_separators, cfg.drop_characters) == ("", "")
    assert cfg.explicit == {"suffix_separators", "drop_characters"}


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"\101\x42\u00e9\U0001F600"', "ABé😀"),
        (r'"\ud83d\ude00"', "😀"),
        (r'"\?\a\'\""', "?\a'\""),
        (r'"\xc3" "\xa9"', "é"),
        ("'single \"quoted\"'", 'single "quoted"'),
        ('"raw é and \ttab"', "raw é and \ttab"),
        (r'"\xfg"', "\x0fg"),
    ],
)
def test_strings_decode_as_go_does(literal, value):
    assert parse_ok(f"mail_log_path: {literal}\n").mail_log_path == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("dovecot_auth: t", True),
        ("dovecot_auth: True", True),
        ("dovecot_auth: 1", True),
        ("dovecot_auth: 0x1", True),
        ("dovecot_auth: 00", False),
        ("dovecot_auth: f", False),
    ],
)
def test_bool_spellings_go_accepts(text, value):
    assert parse_ok(text).dovecot_auth is value


def test_numbers_in_octal_and_negative_zero():
    assert parse_ok("max_data_size_mb: 010").max_data_size_mb == 8
    assert parse_ok("max_data_size_mb: -0").ignored == {"max_data_size_mb": 0}


@pytest.mark.parametrize(
    ("text", "line", "column", "message", "hint"),
    [
        (
            "\n\n  foo: 1\n",
            3,
            3,
            "unknown field",
            f"remove it or fix its name; {UNKNOWN_TAIL}",
        ),
        (
            'smtp_adress: ":25"',
            1,
            1,
            "unknown field",
            f'did you mean "smtp_address"? {UNKNOWN_TAIL}',
        ),
        (
            'hostname: "é" foo: 1',
            1,
            15,
            "unknown field",
            f"remove it or fix its name; {UNKNOWN_TAIL}",
        ),
        (
            'hostname: "a"\n#x\n  hostname: "b"\n',
            3,
            3,
            'non-repeated field "hostname" is repeated',
            "keep one hostname line (it is first set on line 1)",
        ),
        (
            'max_data_size_mb: 0; data_dir: ""\ndata_dir: 5',
            2,
            1,
            'non-repeated field "data_dir" is repeated',
            "keep one data_dir line (it is first set on line 1)",
        ),
        ('hostname "x"\n', 1, 1, 'syntax error: missing field separator ":"', SYNTAX_HINT),
        (
            'hostname: "x"\n  smtp_address\n  ":25"\n',
            2,
            3,
            'syntax error: missing field separator ":"',
            SYNTAX_HINT,
        ),
        (
            "hostname: x\n",
            1,
            11,
            "syntax error: expected a quoted string for hostname",
            SYNTAX_HINT,
        ),
        (
            'max_data_size_mb: "5"',
            1,
            19,
            "syntax error: expected a number for max_data_size_mb",
            SYNTAX_HINT,
        ),
        (
            "dovecot_auth: yes",
            1,
            15,
            "syntax error: expected true or false for dovecot_auth",
            SYNTAX_HINT,
        ),
        (
            'smtp_address: ["a",]',
            1,
            20,
            "syntax error: expected a quoted string",
            SYNTAX_HINT,
        ),
        (
            'hostname: "x" ;;',
            1,
            16,
            "syntax error: expected a field name",
            SYNTAX_HINT,
        ),
        (
            "max_queue_items: 4294967296",
            1,
            18,
            "syntax error: number out of range for max_queue_items",
            SYNTAX_HINT,
        ),
        (
            "max_data_size_mb: +5",
            1,
            19,
            "syntax error: invalid scalar value",
            "write numbers in decimal or 0x hex",
        ),
        (
            "max_data_size_mb: 1_0",
            1,
            19,
            "syntax error: invalid scalar value",
            "write numbers in decimal or 0x hex",
        ),
        (
            "max_data_size_mb: 0o17",
            1,
            19,
            "syntax error: invalid scalar value",
            "write numbers in decimal or 0x hex",
        ),
        (
            r'hostname: "\z"',
            1,
            11,
            "syntax error: invalid escape code in string",
            STRING_HINT,
        ),
        (
            r'hostname: "\400"',
            1,
            11,
            "syntax error: invalid escape code in string",
            STRING_HINT,
        ),
        (
            r'hostname: "\ud800"',
            1,
            11,
            "syntax error: invalid escape code in string",
            STRING_HINT,
        ),
        (
            'x: 1\nhostname: "abc\n',
            1,
            1,
            "unknown field",
            f"remove it or fix its name; {UNKNOWN_TAIL}",
        ),
        ('hostname: "abc\n', 1, 11, "syntax error: unterminated string", STRING_HINT),
        (
            'hostname: "a\x00b"',
            1,
            11,
            "syntax error: invalid character '\\x00' in string",
            STRING_HINT,
        ),
        (
            r'hostname: "\xff" foo: 1',
            1,
            11,
            'field "hostname" contains invalid UTF-8',
            "an escape such as \\xNN or \\NNN made bytes that are not UTF-8",
        ),
        (
            'hostname:\u00a0"x"',
            1,
            10,
            "syntax error: unexpected special space (such as a no-break space)",
            "remove it: only spaces, tabs and line breaks may separate settings",
        ),
        (
            '\ufeffhostname: "x"',
            1,
            1,
            "syntax error: unexpected invisible formatting character (such as a byte order mark)",
            "remove it: only spaces, tabs and line breaks may separate settings",
        ),
    ],
)
def test_syntax_errors_are_reported_where_chasquid_reports_them(text, line, column, message, hint):
    assert parse_bad(text) == Problem(PATH, line, "conf.syntax", message, hint, column=column)


def test_invalid_utf8_is_a_problem_with_its_place():
    problem = parse_bad(b'hostname: "x"\n# caf\xc3\xa9 \xff\n')

    assert problem == Problem(
        PATH,
        2,
        "conf.encoding",
        "not valid UTF-8",
        "save chasquid.conf as UTF-8 (chasquid rejects invalid UTF-8 in values)",
        column=8,
    )


def test_render_writes_explicit_fields_in_field_order():
    cfg = ChasquidConfig(
        submission_address=(":587",),
        hostname="mail.example.com",
        suffix_separators="",
        explicit=frozenset({"data_dir"}),
    )

    assert render_config(cfg) == (
        b'hostname: "mail.example.com"\n'
        b'submission_address: ":587"\n'
        b'data_dir: "/var/lib/chasquid"\n'
        b'suffix_separators: ""\n'
    )
    assert render_config(ChasquidConfig()) == b""


def test_render_escapes_what_needs_escaping_and_keeps_utf8():
    cfg = ChasquidConfig(mail_delivery_agent_args=('a"b\\c\n', "é\x00"))

    assert render_config(cfg) == b'mail_delivery_agent_args: "a\\"b\\\\c\\n"\n' + (
        'mail_delivery_agent_args: "é\\000"\n'.encode()
    )
    assert parse_config(render_config(cfg), PATH) == (cfg, [])


def test_non_default_values_are_explicit_and_values_chasquid_skips_are_refused():
    assert ChasquidConfig(max_queue_items=7).explicit == {"max_queue_items"}
    for bad in (
        {"max_data_size_mb": 0},
        {"smtp_address": ()},
        {"mail_log_path": ""},
        {"hostname": "\udcff"},
        {"max_queue_items": 2**32},
        {"explicit": frozenset({"hostname"})},
        {"explicit": frozenset({"dovecot_auth"})},
    ):
        with pytest.raises(ValueError, match="is not a value chasquid takes"):
            ChasquidConfig(**bad)


def test_changes_compare_effective_values():
    old = parse_ok('hostname: "a.example"\nmax_data_size_mb: 50\n')
    new = parse_ok('hostname: "b.example"\nsmtp_address: ":25"\nmax_data_size_mb: 0\n')

    assert config_changes(old, new) == [
        ("hostname", "a.example", "b.example"),
        ("smtp_address", ("systemd",), (":25",)),
    ]
    assert config_changes(new, new) == []
    assert config_changes(ChasquidConfig(), ChasquidConfig(hostname="x.example")) == [
        ("hostname", None, "x.example")
    ]


def test_field_versions_and_listen_fields():
    assert LISTEN_FIELDS == ("smtp_address", "submission_address", "submission_over_tls_address")
    assert list(FIELD_MIN_VERSION) == list(DEFAULTS)
    assert len(FIELD_MIN_VERSION) == 18
    assert {n for n, v in FIELD_MIN_VERSION.items() if v > (1, 11)} == {
        "max_queue_items",
        "give_up_send_after",
    }
    assert FIELD_MIN_VERSION["max_queue_items"] == (1, 16)
    assert FIELD_MIN_VERSION["haproxy_incoming"] == (1, 6)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_input_gives_a_config_or_one_located_problem(data):
    cfg, problems = parse_config(data, PATH)

    if cfg is None:
        assert len(problems) == 1
        assert problems[0].code in ("conf.syntax", "conf.encoding")
    else:
        assert problems == []


TOKENS = st.sampled_from(
    [
        "hostname",
        "smtp_address",
        "dovecot_auth",
        "max_data_size_mb",
        ":",
        "[",
        "]",
        ",",
        ";",
        '"a"',
        "'b'",
        '"\\x41"',
        '"\\',
        "1",
        "-1",
        "true",
        "#c\n",
        "\n",
        " ",
        "\t",
        "{",
        "}",
        "\\",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(TOKENS, max_size=20).map("".join))
def test_token_soup_never_raises(text):
    cfg, problems = parse_config(text.encode(), PATH)

    assert (cfg is None) == bool(problems)


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
VALUES = {
    "hostname": TEXT.filter(bool),
    "max_data_size_mb": st.integers(1, 2**63 - 1),
    "smtp_address": st.lists(TEXT, min_size=1, max_size=3).map(tuple),
    "submission_over_tls_address": st.lists(TEXT, min_size=1, max_size=3).map(tuple),
    "mail_delivery_agent_args": st.lists(TEXT, min_size=1, max_size=3).map(tuple),
    "data_dir": TEXT.filter(bool),
    "suffix_separators": TEXT,
    "drop_characters": TEXT,
    "dovecot_auth": st.just(True),
    "max_queue_items": st.integers(1, 2**32 - 1),
    "give_up_send_after": TEXT.filter(bool),
}


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional=VALUES), st.sets(st.sampled_from(list(DEFAULTS))))
def test_parse_of_render_is_the_same_config(values, also_explicit):
    takeable = {n for n in also_explicit if n in values or DEFAULTS[n] not in (None, "", False)}
    cfg = ChasquidConfig(**values, explicit=frozenset(takeable))

    again, problems = parse_config(render_config(cfg), PATH)

    assert problems == []
    assert again == cfg
    assert again.explicit == cfg.explicit


PLAIN_NAMES = st.sampled_from(["hostname", "smtp_address", "suffix_separators", "dovecot_auth"])
PLAIN_NAMES |= st.sampled_from(["max_data_size_mb", "max_queue_items", "haproxy_incoming"])
PLAIN_VALUES = st.sampled_from(
    ['"a"', "'b'", '"a" "b"', "[]", '["x"]', '["x", "y"]', '["x",]', '["x" "y"]', "[", "x"]
) | st.sampled_from(["0", "1", "7", "007", "-1", "0x10", "1.0", "4294967296", str(2**63)])
PLAIN_VALUES |= st.sampled_from(["true", "false", "True", "t", "f", "yes", "1e3"])
PLAIN_ENTRY = st.tuples(
    PLAIN_NAMES,
    st.sampled_from([":", ": ", " : ", ":\n", " ", ""]),
    PLAIN_VALUES,
    st.sampled_from(["\n", ";\n", ",", " ", "", ";;", "# c\n"]),
).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.lists(PLAIN_ENTRY, max_size=6).map("".join))
def test_a_plain_file_reads_as_the_protobuf_library_reads_it(text):
    # What parse_config takes without the library must be what the library takes.
    lexed = prototext_go.lex(text)
    found = prototext_go.walk(lexed)
    singular = chasquid_conf._SINGULAR
    if lexed.errors or prototext_go.repeated_errors(found, singular):
        return  # parse_config reports those before looking further
    if not prototext_plain.is_plain(lexed.tokens, chasquid_conf._KINDS):
        return
    msg, err = textproto.parse(lexed.python_text(found, BOOLS), chasquid_conf._config_class())

    assert err is None
    plain = prototext_plain.scalars(found, chasquid_conf._KINDS)
    assert plain == chasquid_conf._library_scalars(msg, found)


def test_the_plain_reading_covers_common_files_and_leaves_the_rest_to_the_library():
    plain = 'hostname: "m"\nsmtp_address: [":25", "systemd"];\nmax_data_size_mb: 30\n'
    kinds = chasquid_conf._KINDS
    assert prototext_plain.is_plain(prototext_go.lex(plain + "dovecot_auth: true\n").tokens, kinds)
    for other in ("dovecot_auth: t", "max_data_size_mb: 0x20", "hostname: [", "data_dirr: 'x'"):
        assert not prototext_plain.is_plain(prototext_go.lex(plain + other).tokens, kinds), other


def test_a_plain_file_does_not_import_the_protobuf_library() -> None:
    code = (
        "import sys\n"
        "from gitops_mail.core.formats.chasquid_conf import parse_config\n"
        "cfg, problems = parse_config(b'hostname: \"m\"\\nmax_data_size_mb: 9\\n', 'c')\n"
        "assert cfg is not None and cfg.max_data_size_mb == 9, problems\n"
        "assert 'google.protobuf' not in sys.modules\n"
        "cfg, problems = parse_config(b'hostname: m\\n', 'c')\n"
        "assert cfg is None and 'google.protobuf' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
