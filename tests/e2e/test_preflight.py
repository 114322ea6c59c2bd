"""chasquid's own pre-flight on a staged config dir, against the real chasquid 1.11."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support import chasquiduser
from support.wait import poll

from gitops_mail.errors import CommandError, GitopsMailError
from gitops_mail.host import procs
from gitops_mail.host.preflight import PreflightResult, error_lines, preflight

if TYPE_CHECKING:
    from conftest import ConfigDir

pytestmark = [pytest.mark.netns, pytest.mark.chasquid]

USER = "ana@example.test"
PASSWORD = "pw"
CERT = "certs/mail.example.test"
LOOPBACK_LISTEN = "Server listening on 127.0.0.1:0"


# --- helpers ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_process_left(tmp_path: Path):
    """After each test: no chasquid, nothing started from tmp_path, no unreaped child.

    Polled: a grandchild killed with its group (a wrapper's chasquid) is reaped
    by the namespace's init a moment later.
    """
    yield
    left: list[str] = []

    def none_left() -> bool:
        left[:] = leftovers(tmp_path)
        return not left

    try:
        poll(none_left, 60, "no process left")  # done at the reaping; 60 s only bounds a leak
    except AssertionError:
        assert left == []


def leftovers(tmp_path: Path) -> list[str]:
    """Processes in this PID namespace that a test must not leave behind."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended while we looked
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if comm == "chasquid" or str(tmp_path) in cmdline or int(ppid) == os.getpid():
            found.append(f"{entry.name} {comm} {state} {cmdline}")
    return found


def data_dir_used(result: PreflightResult) -> Path:
    """The data_dir chasquid ran with, from its own configuration dump."""
    match = re.search(r"Data directory: (.+)", result.log)
    assert match, result.log
    return Path(match[1])


def conf(config: ConfigDir) -> Path:
    return config.path / "chasquid.conf"


def users_file(config: ConfigDir, domain: str = "example.test") -> Path:
    return config.path / "domains" / domain / "users"


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def config(tmp_path: Path, make_config_dir) -> ConfigDir:
    """A valid config dir; domains/example.test has no users file (see ``with_user``)."""
    return chasquiduser_tree(make_config_dir(tmp_path))


@pytest.fixture
def with_user(config: ConfigDir) -> ConfigDir:
    """``config`` with USER in domains/example.test/users."""
    config.add_user(USER, PASSWORD)
    return chasquiduser_tree(config)


def chasquiduser_tree(config: ConfigDir) -> ConfigDir:
    """``config`` readable by chasquid, as gitops-mail installs a tree (0640 root:chasquid)."""
    chasquiduser.as_installed(config.path)
    return config


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``root``: mode and content."""
    return {
        str(p.relative_to(root)): (p.stat().st_mode, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def failed(result: PreflightResult, *errors: str) -> None:
    assert (result.ok, result.errors) == (False, errors), result.log


# --- a good config -----------------------------------------------------------------


def test_valid_config_passes(with_user: ConfigDir) -> None:
    before = tree(with_user.path)
    result = preflight(with_user.path)
    assert (result.ok, result.errors) == (True, ()), result.log
    assert tree(with_user.path) == before
    assert result.log.count(LOOPBACK_LISTEN) == 3
    assert "Mail log: <stderr>" in result.log
    assert "Got signal to exit" not in result.log  # the log ends where it was judged
    assert result.duration_ms > 0
    used = data_dir_used(result)
    assert used.parent == with_user.path.parent  # beside the staged tree, never in /tmp
    assert used.name.startswith("preflight-")
    assert not used.exists()


def test_log_has_no_secret(with_user: ConfigDir) -> None:
    result = preflight(with_user.path)
    assert result.ok, result.log
    users = users_file(with_user).read_text()
    secrets = re.findall(r'(?:salt|encrypted): "([^"]{8,})"', users)
    assert secrets
    for secret in secrets:
        assert secret not in result.log
    assert PASSWORD not in result.log.split()


# --- certificates ------------------------------------------------------------------


def test_key_that_does_not_match_the_certificate(config: ConfigDir, tls_cert) -> None:
    other = tls_cert(config.hostname)  # a new leaf with its own key
    (config.path / CERT / "privkey.pem").write_bytes(other.privkey.read_bytes())
    failed(preflight(config.path), f"{CERT}: tls: private key does not match public key")


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("fullchain.pem", "tls: failed to find any PEM data in certificate input"),
        ("privkey.pem", "tls: failed to find any PEM data in key input"),
    ],
)
def test_bad_pem(config: ConfigDir, name: str, error: str) -> None:
    (config.path / CERT / name).write_text("not PEM at all\n")
    failed(preflight(config.path), f"{CERT}: {error}")


def test_empty_certs_dir(config: ConfigDir) -> None:
    shutil.rmtree(config.path / CERT)
    failed(preflight(config.path), 'No entries found in "certs/"')


def test_certificate_dir_without_key(config: ConfigDir) -> None:
    (config.path / CERT / "privkey.pem").unlink()
    failed(
        preflight(config.path),
        "No SSL/TLS certificates found",
        "Ideally there should be a certificate for each MX you act as",
        "At least one valid certificate is needed",
    )


# --- domains -------------------------------------------------------------------------


def test_no_domains_dir(config: ConfigDir) -> None:
    shutil.rmtree(config.path / "domains")
    failed(
        preflight(config.path),
        'Error reading "domains/" directory: open domains/: no such file or directory',
    )


def test_empty_domains_dir(config: ConfigDir) -> None:
    shutil.rmtree(config.path / "domains" / "example.test")
    failed(preflight(config.path), 'No entries found in "domains/"')


def test_file_where_a_domain_dir_belongs(config: ConfigDir) -> None:
    (config.path / "domains" / "stray.test").write_text("")
    failed(
        preflight(config.path),
        "domains/stray.test: error: open domains/stray.test/aliases: not a directory",
    )


# --- chasquid.conf ---------------------------------------------------------------------


def test_conf_syntax_error(config: ConfigDir) -> None:
    with conf(config).open("a") as out:
        out.write("max_data_size_mb: {\n")  # line 4
    failed(
        preflight(config.path),
        "Error loading config: parsing config: proto: syntax error (line 4:19): "
        "unexpected token: {",
    )


def test_conf_unknown_field(config: ConfigDir) -> None:
    with conf(config).open("a") as out:
        out.write("  max_data_size: 10\n")  # line 4; the field is max_data_size_mb
    failed(
        preflight(config.path),
        "Error loading config: parsing config: proto: (line 4:3): unknown field: max_data_size",
    )


# --- users files ---------------------------------------------------------------------


CORRUPT_USERS = 'users: {\n  key: "ana"\n  garbage\n'
CORRUPT_USERS_ERRORS = (
    'domains/example.test: error: proto: (line 3:3): unknown map entry field "garbage"',
    "domains/example.test/users: Error loading database: "
    'proto: (line 3:3): unknown map entry field "garbage"',
)


def test_corrupt_users_file(config: ConfigDir) -> None:
    users_file(config).write_text(CORRUPT_USERS)
    before = tree(config.path)
    failed(preflight(config.path), *CORRUPT_USERS_ERRORS)
    assert tree(config.path) == before


def test_errors_lose_timestamps(tmp_path: Path, config: ConfigDir) -> None:
    users_file(config).write_text(CORRUPT_USERS)
    logtime = write_script(
        tmp_path / "chasquid-logtime", '#!/bin/sh\nexec /usr/bin/chasquid -logtime "$@"\n'
    )
    result = preflight(config.path, binary=logtime)
    failed(result, *CORRUPT_USERS_ERRORS)
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ E ", result.log, re.MULTILINE)


def test_error_lines_of_a_newer_chasquid() -> None:
    # The shape chasquid 1.14 and later log: the domain is in the fatal line.
    log = (
        "_ chasquid.go:99     Loading domains:\n"
        "_ chasquid.go:330      a.test (1 users, 0 aliases, 1 DKIM keys)\n"
        "☠ chasquid.go:312      b.test: users file error: proto: (line 1:1): bad\n"
    )
    assert error_lines(log) == ["b.test: users file error: proto: (line 1:1): bad"]


def test_users_file_check_userdb_refuses(tmp_path: Path, make_config_dir) -> None:
    # "denied" (receive-only users) exists only from chasquid 1.13 on.
    config = make_config_dir(tmp_path, domains=("example.test", "other.test"))
    users_file(config).write_text('users: { key: "ana" value: { denied: {} } }\n')
    chasquid_says = "domains/example.test: error: proto: (line 1:30): unknown field: denied"
    util_says = (
        "domains/example.test/users: Error loading database: "
        "proto: (line 1:30): unknown field: denied"
    )
    failed(preflight(config.path), chasquid_says, util_says)
    # other.test has no users file: nothing to check there with chasquid-util.
    failed(preflight(config.path, domains=["other.test"]), chasquid_says)


def test_missing_chasquid_util_is_an_error_not_a_verdict(with_user: ConfigDir) -> None:
    with pytest.raises(CommandError) as caught:
        preflight(with_user.path, util=with_user.path / "no-such-util")
    assert caught.value.returncode == 127


# --- what the pre-flight must never do ------------------------------------------------


def test_never_delivers_the_queue_the_staged_config_names(
    tmp_path: Path, with_user: ConfigDir, chasquid_server, send_mail, wait_for
) -> None:
    config = with_user
    # Queue a message: the delivery agent fails with 75 (try again later).
    mda = tmp_path / "mda.sh"
    working_mda = mda.read_text()
    attempted = tmp_path / "attempted"
    write_script(mda, f"#!/bin/sh\ntouch {attempted}\nexit 75\n")
    server = chasquid_server(config)
    send_mail(server, USER, USER, user=USER, password=PASSWORD)
    wait_for(attempted.exists, what="a first delivery attempt")
    server.stop()
    queue = sorted(p.name for p in (server.data_dir / "queue").iterdir())
    assert queue
    # The staged config names that data_dir, and the agent now works.
    write_script(mda, working_mda)
    with conf(config).open("a") as out:
        out.write(f'data_dir: "{server.data_dir}"\n')

    result = preflight(config.path)

    assert result.ok, result.log
    used = data_dir_used(result)
    assert used != server.data_dir
    assert used.name.startswith("preflight-")
    assert not used.exists()
    assert sorted(p.name for p in (server.data_dir / "queue").iterdir()) == queue
    assert config.read_mailbox(USER) == b""
    # That queue was deliverable: chasquid itself on it delivers at once.
    server.restart()
    assert b"Hello from the end-to-end tests." in wait_for(lambda: config.read_mailbox(USER))


def test_binds_only_loopback(tmp_path: Path, config: ConfigDir) -> None:
    # The staged config asks for public addresses; 192.0.2.1 is not even on
    # this machine, so binding it would fail the pre-flight.
    with conf(config).open("a") as out:
        out.write(
            'smtp_address: "0.0.0.0:25"\nsmtp_address: "[::]:25"\n'
            'submission_address: "192.0.2.1:587"\n'
            'submission_over_tls_address: "0.0.0.0:465"\n'
            'monitoring_address: "0.0.0.0:1099"\n'
        )
    snapshot = chasquiduser.give(tmp_path / "listening")  # the wrapper runs as chasquid
    wrapper = write_script(tmp_path / "chasquid-wrapper", WRAPPER.format(sys.executable, snapshot))

    result = preflight(config.path, binary=wrapper)

    assert result.ok, result.log
    assert result.log.count(LOOPBACK_LISTEN) == 3
    listening = snapshot.read_text().split()
    assert len(listening) >= 3  # smtp, submission, submission over TLS (and monitoring)
    assert {address.split(":")[0] for address in listening} == {"127.0.0.1"}


# Runs the real chasquid; when it reports its third listener, writes the
# addresses of the sockets chasquid listens on (from /proc) to a file, then
# passes the line on.
WRAPPER = """#!{0}
import os, subprocess, sys

def link(path):
    try:
        return os.readlink(path)
    except FileNotFoundError:  # an fd closed between listdir and readlink (Go's runtime)
        return None

def listening(pid):
    inodes = {{link(f"/proc/{{pid}}/fd/{{fd}}") for fd in os.listdir(f"/proc/{{pid}}/fd")}}
    found = []
    for table in ("tcp", "tcp6"):
        for row in open(f"/proc/{{pid}}/net/{{table}}").read().splitlines()[1:]:
            cols = row.split()
            if cols[3] == "0A" and f"socket:[{{cols[9]}}]" in inodes:
                found.append(address(cols[1]))
    return found

def address(hexaddr):
    host, port = hexaddr.split(":")
    if len(host) == 8:
        host = ".".join(str(b) for b in bytes.fromhex(host)[::-1])
    return f"{{host}}:{{int(port, 16)}}"

child = subprocess.Popen(["/usr/bin/chasquid", *sys.argv[1:]], stderr=subprocess.PIPE)
seen = 0
for line in child.stderr:
    seen += b"Server listening on " in line
    if seen == 3:
        with open("{1}", "w") as out:
            out.write("\\n".join(listening(child.pid)))
        seen += 1
    sys.stderr.buffer.write(line)
    sys.stderr.flush()
sys.exit(child.wait())
"""


# --- chasquid that ends, or never gets ready ----------------------------------------------


def test_never_finishes_starting(config: ConfigDir) -> None:
    # chasquid opens fullchain.pem to read it: a FIFO with no writer blocks it.
    fullchain = config.path / CERT / "fullchain.pem"
    fullchain.unlink()
    os.mkfifo(fullchain)
    result = preflight(config.path, timeout=0.5)
    # However far chasquid got (a slow machine: not even its first line), it never
    # listens: the verdict and the cleanup do not depend on speed.
    failed(result, "chasquid did not finish starting within 0.5 s")
    assert list(config.path.parent.glob("preflight-*")) == []


def test_fake_binary_that_never_listens(tmp_path: Path, config: ConfigDir) -> None:
    sleeper = tmp_path / "sleeper"
    shutil.copy("/bin/sleep", sleeper)
    fake = write_script(tmp_path / "fake-chasquid", f"#!/bin/sh\necho starting >&2\n{sleeper} 60\n")
    result = preflight(config.path, binary=fake, timeout=0.2)
    failed(result, "chasquid did not finish starting within 0.2 s")
    assert "starting\n".startswith(result.log)  # what it wrote in time: all, some or none


def test_fake_binary_that_exits(tmp_path: Path, config: ConfigDir) -> None:
    fake = write_script(tmp_path / "fake-chasquid", "#!/bin/sh\necho 'no luck' >&2\nexit 3\n")
    result = preflight(config.path, binary=fake)
    failed(result, "chasquid exited with code 3 while starting")
    assert result.log == "no luck\n"  # its output up to its end, whatever the machine's speed


def test_fake_binary_killed_by_a_signal(tmp_path: Path, config: ConfigDir) -> None:
    fake = write_script(tmp_path / "fake-chasquid", "#!/bin/sh\nkill -KILL $$\n")
    failed(preflight(config.path, binary=fake), "chasquid was killed by signal 9 while starting")


def test_missing_chasquid_is_an_error_not_a_verdict(tmp_path: Path, config: ConfigDir) -> None:
    with pytest.raises(CommandError) as caught:
        preflight(config.path, binary=tmp_path / "no-such-chasquid")
    assert caught.value.returncode == 127


def test_spawn_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    sleeper = tmp_path / "sleeper"
    shutil.copy("/bin/sleep", sleeper)
    script = write_script(
        tmp_path / "stubborn", f"#!/bin/sh\ntrap '' TERM\necho ready\nexec {sleeper} 60\n"
    )
    with procs.spawn([script], stop_timeout=0.1) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
    assert child.returncode == -signal.SIGKILL
    assert child.stdout.closed


# --- as the chasquid user, leaving nothing behind -------------------------------------------

# Records the credentials of the process that then becomes the program.
WHO = """#!/bin/sh
grep -E '^(Uid|Gid|Groups|CapEff):' /proc/$$/status >{out}
exec {program} "$@"
"""


def credentials(path: Path) -> dict[str, list[str]]:
    return {k: v.split() for k, v in (line.split(":", 1) for line in path.read_text().splitlines())}


def test_chasquid_and_chasquid_util_run_as_chasquid(tmp_path: Path, with_user: ConfigDir) -> None:
    uid, gid = (str(n) for n in chasquiduser.ids())
    seen = {name: chasquiduser.give(tmp_path / f"{name}.status") for name in ("chasquid", "util")}
    binary = write_script(
        tmp_path / "chasquid-who", WHO.format(out=seen["chasquid"], program="/usr/bin/chasquid")
    )
    util = write_script(
        tmp_path / "util-who", WHO.format(out=seen["util"], program="/usr/bin/chasquid-util")
    )

    result = preflight(with_user.path, binary=binary, util=util)

    assert (result.ok, result.errors) == (True, ()), result.log
    assert credentials(seen["chasquid"]) == {
        "Uid": [uid] * 4,
        "Gid": [gid] * 4,
        "Groups": [gid],
        "CapEff": ["0000000000000000"],
    }
    assert credentials(seen["util"]) == {
        "Uid": [uid] * 4,
        "Gid": [gid] * 4,
        "Groups": [],
        "CapEff": ["0000000000000000"],
    }


def test_a_missing_chasquid_user_is_an_error_not_a_verdict(with_user: ConfigDir) -> None:
    with pytest.raises(GitopsMailError) as caught:
        preflight(with_user.path, user="no-such-chasquid-user")
    assert caught.value.message == (
        "there is no user 'no-such-chasquid-user' on this host to run chasquid as"
    )


def test_leftovers_of_a_killed_preflight_are_removed_by_the_next(
    tmp_path: Path, with_user: ConfigDir
) -> None:
    leftover = tmp_path / "preflight-killed"
    (leftover / "queue").mkdir(parents=True)
    (leftover / "queue" / "m1").write_text("a message a killed pre-flight never sent\n")
    busy = tmp_path / "preflight-busy"  # another pre-flight's, in use: kept
    busy.mkdir()
    held = os.open(busy, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = preflight(with_user.path)
    finally:
        os.close(held)

    assert result.ok, result.log
    assert sorted(p.name for p in tmp_path.glob("preflight-*")) == ["preflight-busy"]
