"""Our chasquid.conf parsing and rendering against the real ``chasquid-util print-config``."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.tools import needs

from gitops_mail.core.checks.conf import check_config
from gitops_mail.core.formats.chasquid_conf import (
    FIELD_MIN_VERSION,
    ChasquidConfig,
    config_changes,
    parse_config,
    render_config,
)

UTIL = Path("/usr/bin/chasquid-util")
CHASQUID = Path("/usr/bin/chasquid")
DEBIAN_CONF = Path("/etc/chasquid/chasquid.conf")
pytestmark = [
    pytest.mark.chasquid,
    needs(str(UTIL)),
]
PATH = "chasquid/chasquid.conf"
GO_LOCATION = re.compile(r"\(line (\d+):(\d+)\)")


def installed_version() -> tuple[int, int]:
    out = subprocess.run([CHASQUID, "-version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"chasquid (\d+)\.(\d+)", out)
    assert found, out
    return int(found.group(1)), int(found.group(2))


def print_config(conf: bytes) -> subprocess.CompletedProcess[bytes]:
    """``chasquid-util print-config`` on a config dir holding only ``conf``."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "chasquid.conf").write_bytes(conf)
        return subprocess.run([UTIL, f"-C={tmp}", "print-config"], capture_output=True, check=False)


def effective(conf: bytes) -> ChasquidConfig:
    done = print_config(conf)
    assert done.returncode == 0, done
    printed, problems = parse_config(done.stdout, "print-config output")
    assert problems == []
    assert printed is not None
    return printed


def test_a_rendered_config_is_what_chasquid_runs_with():
    cfg = ChasquidConfig(
        hostname="mail.example.com",
        max_data_size_mb=25,
        smtp_address=(":25", "systemd"),
        submission_address=("127.0.0.1:587",),
        monitoring_address="127.0.0.1:1099",
        mail_delivery_agent_bin="/usr/bin/procmail",
        mail_delivery_agent_args=("-d", "%to_user%"),
        data_dir="/srv/chasquid",
        suffix_separators="",
        drop_characters="._",
        mail_log_path="<stderr>",
        dovecot_auth=True,
        dovecot_userdb_path="/run/dovecot/auth-userdb",
        haproxy_incoming=True,
    )

    assert config_changes(cfg, effective(render_config(cfg))) == []


OLD_FIELDS = [name for name, since in FIELD_MIN_VERSION.items() if since <= installed_version()]
TEXT = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=10)
VALUES = {
    "max_data_size_mb": st.integers(1, 2**43 - 1),
    "smtp_address": st.lists(TEXT, min_size=1, max_size=2).map(tuple),
    "mail_delivery_agent_args": st.lists(st.text(max_size=6), min_size=1, max_size=3).map(tuple),
    "data_dir": TEXT,
    "suffix_separators": st.text(max_size=4),
    "drop_characters": st.text(max_size=4),
    "dovecot_client_path": TEXT,
    "haproxy_incoming": st.just(True),
}


@settings(max_examples=30, deadline=None)
@given(TEXT, st.fixed_dictionaries({}, optional=VALUES))
def test_random_rendered_configs_mean_the_same_to_chasquid(hostname, values):
    cfg = ChasquidConfig(hostname=hostname, **values)
    assert set(cfg.explicit) <= set(OLD_FIELDS)

    assert config_changes(cfg, effective(render_config(cfg))) == []


@needs(str(DEBIAN_CONF), why="the chasquid package's own chasquid.conf")
def test_the_debian_default_config_is_all_defaults():
    data = DEBIAN_CONF.read_bytes()

    cfg, problems = parse_config(data, PATH)

    assert problems == []
    assert cfg == ChasquidConfig()
    assert cfg.explicit == frozenset()
    printed = effective(data)
    assert printed.hostname  # chasquid fills in the machine's name; we leave it unset
    assert config_changes(cfg, printed) == [("hostname", None, printed.hostname)]


BAD = [
    b"\n\n  foo: 1\n",
    b'hostname: "mail.example.com"\nsmtp_adress: ":25"\n',
    b'hostname: "x"\n# c\nhostname: "y"\n',
    b'max_data_size_mb: 0; data_dir: ""\ndata_dir: 5\n',
    b"dovecot_auth: 1, dovecot_auth: 2\n",
    b'hostname "x"\n',
    b'hostname: "x"\n  smtp_address\n  ":25"\n',
    b'smtp_address: [\n ":25",\n x]\n',
    b"hostname: x\n",
    b'smtp_address: ["a",]\n',
    b"dovecot_auth: yes\n",
    b"max_data_size_mb: 1.0\n",
    b"max_data_size_mb: +5\n",
    b"max_data_size_mb: 1_0\n",
    b"max_data_size_mb: 9223372036854775808\n",
    b'# x\nhostname: "\\z"\n',
    b'hostname: "\\400"\n',
    b'hostname: "\\xff" foo: 1\n',
    b'hostname: "x" ;;\n',
    b'hostname:\xc2\xa0"x"\n',
    b'\xef\xbb\xbfhostname: "x"\n',
    b'data_dir: "a\x00b"\n',
    b'data_dir: "a\nb"\n',
    b'hostname: "caf\xe9"\n',
]


@pytest.mark.parametrize("conf", BAD)
def test_chasquid_refuses_what_we_refuse_at_the_same_place(conf):
    done = print_config(conf)
    cfg, problems = parse_config(conf, PATH)

    assert done.returncode != 0
    assert cfg is None
    [problem] = problems
    location = GO_LOCATION.search(done.stdout.decode() + done.stderr.decode())
    assert location, done
    assert problem.line == int(location.group(1))
    if problem.code == "conf.syntax":  # for bad UTF-8, Go points at the string, we at the byte
        assert problem.column == int(location.group(2))
    if b"unknown field" in done.stdout + done.stderr:
        assert problem.message.startswith("unknown field")


def test_a_field_newer_than_chasquid_is_refused_by_it_and_by_our_check():
    version = installed_version()
    newer = [name for name, since in FIELD_MIN_VERSION.items() if since > version]
    if not newer:
        pytest.skip("the installed chasquid knows every field")
    conf = f'hostname: "mail.example.com"\n\n{newer[0]}: 1\n'.encode()
    if newer[0] == "give_up_send_after":
        conf = conf.replace(b": 1", b': "1h"')
    cfg, problems = parse_config(conf, PATH)
    assert problems == []
    assert cfg is not None

    done = print_config(conf)
    [problem] = check_config(cfg, PATH, chasquid_version=version)

    assert done.returncode != 0
    assert f"unknown field: {newer[0]}".encode() in done.stdout + done.stderr
    assert (problem.code, problem.line) == ("conf.version", 3)
