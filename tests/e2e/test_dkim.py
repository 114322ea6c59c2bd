"""DKIM end to end: keys made on the server, mail signed by the real chasquid 1.11, the
signatures verified against the zone the daemon committed back, and no key byte anywhere.

Runs inside the private network namespace (scripts/netns-run), like every e2e test.
"""

from __future__ import annotations

import grp
import hashlib
import os
import signal
import smtplib
import stat
import subprocess
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dkim
import dns.rdatatype
import dns.zone
import pytest

pytest.register_assert_rewrite("apply_fixtures", "daemon_fixtures")

from apply_fixtures import ANA, DOMAIN, MANIFEST_PATH, Sandbox, poll  # noqa: E402
from daemon_fixtures import StartDaemon, aliases, attempt  # noqa: E402

pytest_plugins = ["apply_fixtures", "daemon_fixtures", "dns_fixtures"]

SELECTORS = ("s2026", "s2025")
ZONE = f"dns/{DOMAIN}.zone"
HOOK_USER = (
    "#!/bin/sh\n"
    "# the repo's own post-data hook: adds a header, refuses subjects with REFUSE\n"
    'if grep -q "^Subject: .*REFUSE" ; then echo "refused by the repo hook"; exit 20; fi\n'
    'echo "X-Repo-Hook: seen"\n'
)


def dkim_manifest(box: Sandbox, *, version: str = "1.11", hooks: bool = False) -> str:
    text = box.manifest(version=version).replace(
        f"  {DOMAIN}: {{}}\n", f"  {DOMAIN}: {{dkim: {{selectors: [{', '.join(SELECTORS)}]}}}}\n"
    )
    return text.replace("chasquid:\n", "chasquid:\n  hooks: true\n") if hooks else text


def git(box: Sandbox, *args: str) -> bytes:
    done = subprocess.run(
        ["git", "-C", str(box.origin.path), *args], capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def main_tip(box: Sandbox) -> str:
    return git(box, "rev-parse", "main").decode().strip()


def txt_records(zone_text: bytes) -> dict[bytes, bytes]:
    """name (absolute, as dkimpy asks) -> TXT strings joined, from the zone as generated."""
    zone = dns.zone.from_text(zone_text.decode(), relativize=False, check_origin=False)
    found = {}
    for name, node in zone.nodes.items():
        rdataset = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TXT)
        if rdataset is not None:
            found[name.to_text().encode()] = b"".join(s for r in rdataset for s in r.strings)
    return found


def mailbox(box: Sandbox) -> Path:
    return box.root / "mailboxes" / ANA


def newly_delivered(box: Sandbox, before: int, subject: str) -> bytes:
    """The message with ``subject`` appended to ana's mailbox after ``before`` bytes."""
    box.delivered(ANA, subject)
    return mailbox(box).read_bytes()[before:]


def size(box: Sandbox) -> int:
    return mailbox(box).stat().st_size if mailbox(box).exists() else 0


def send_unauthenticated(box: Sandbox, subject: str) -> None:
    """From outside, port 25, no AUTH (a null sender: no SPF lookup)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = ANA, ANA, subject  # claims to be ana
    msg.set_content("Hello from the apply tests.\n")
    with smtplib.SMTP("127.0.0.1", box.ports.smtp, local_hostname="x.example.net") as smtp:
        assert smtp.send_message(msg, from_addr="<>", to_addrs=[ANA]) == {}


def store_state(box: Sandbox) -> dict[str, tuple[bytes, int, int, float]]:
    """Every file of the key store: bytes, inode, mode, mtime."""
    root = box.state_dir / "dkim"
    return {
        str(p.relative_to(root)): (
            p.read_bytes(),
            p.stat().st_ino,
            p.stat().st_mode,
            p.stat().st_mtime,
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def verify_all(message: bytes, records: dict[bytes, bytes] | None = None) -> list[bool]:
    """Each signature of ``message`` verified against ``records``, or, given none, against
    live DNS (dkimpy asks the namespace's resolver, 127.0.0.1: the test's NSD)."""

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return records[name] if records is not None else b""

    def verified(index: int) -> bool:
        try:
            if records is None:
                return bool(dkim.DKIM(message).verify(idx=index))
            return bool(dkim.DKIM(message).verify(idx=index, dnsfunc=dnsfunc))
        except dkim.DKIMException:  # a body hash mismatch, for one
            return False

    return [verified(i) for i in range(message.count(b"DKIM-Signature:"))]


def test_mail_is_signed_for_every_selector_and_verifies_against_the_committed_zone(
    sandbox: Sandbox, start_daemon: StartDaemon, dns_server: Callable[..., Any]
) -> None:
    box = sandbox
    box.write_host(commit_back=True)
    outputs: list[str] = []
    daemon = start_daemon(box)
    daemon.ready()
    applied = box.commit({MANIFEST_PATH: dkim_manifest(box)}, "sign with two selectors")
    attempt(box, applied)
    own = poll(lambda: main_tip(box) if main_tip(box) != applied else None, 20, "commit-back")
    poll(lambda: box.status()["live"] == own, 20, "the daemon's own commit recorded live")

    # the key store: one PKCS#8 key per selector, 0600 in a 0700 directory
    store = box.state_dir / "dkim" / DOMAIN
    assert stat.S_IMODE((box.state_dir / "dkim").stat().st_mode) == 0o700
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    for selector in SELECTORS:
        key = store / f"{selector}.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
        live = box.config_dir / "domains" / DOMAIN / f"dkim:{selector}.pem"
        assert live.read_bytes() == key.read_bytes()
        assert (stat.S_IMODE(live.stat().st_mode), live.stat().st_uid) == (0o640, 0)
    hook = box.config_dir / "hooks" / "post-data"
    assert stat.S_IMODE(hook.stat().st_mode) == 0o755

    # the zone as the daemon committed it publishes both keys
    zone = git(box, "show", f"{own}:{ZONE}")
    records = txt_records(zone)
    for selector in SELECTORS:
        published = (store / f"{selector}.pub").read_bytes().strip()
        assert records[f"{selector}._domainkey.{DOMAIN}.".encode()] == published

    # `gitops-mail dns` prints the same zone on the server (key store) and in a checkout
    server = box.gm("dns", DOMAIN)
    box.workdir.git("pull", "--quiet", "--ff-only", "origin", "main")  # the daemon's commit
    checkout = box.gm("dns", "--repo", str(box.workdir.path), "--format", "zone")
    assert (server.code, server.out) == (checkout.code, checkout.out) == (0, zone.decode())
    outputs += [server.out, server.err, checkout.out, checkout.err]

    # authenticated mail: signed once per selector, both verify; a tampered body fails
    before = size(box)
    box.send(ANA, "signed")
    signed = newly_delivered(box, before, "signed")
    selectors = {h.split(b"s=")[1].split(b";")[0] for h in signed.split(b"DKIM-Signature:")[1:]}
    assert selectors == {s.encode() for s in SELECTORS}
    assert verify_all(signed, records) == [True, True]
    tampered = signed.replace(b"Hello from the apply tests.", b"Hello from someone else.")
    assert verify_all(tampered, records) == [False, False]
    # and through a real DNS server loading the committed zone file as it is
    dns_server().set_zone(DOMAIN, zone)
    assert verify_all(signed) == [True, True]
    assert verify_all(tampered) == [False, False]

    # unauthenticated mail, even claiming to be ana: not signed
    before = size(box)
    send_unauthenticated(box, "not signed")
    assert b"DKIM-Signature" not in newly_delivered(box, before, "not signed")

    # keys are made once: a daemon no-op pass, CLI applies and a real change make none
    kept = store_state(box)
    passes = daemon.status()["passes"]
    daemon.signal(signal.SIGUSR1)
    poll(lambda: daemon.status().get("passes", 0) > passes, 20, "a forced pass")
    for args in (("apply",), ("apply", "--dry-run"), ("dns",), ("dns", "--format", "json")):
        done = box.gm(*args)
        assert done.code == 0, done.err
        outputs += [done.out, done.err]
    changed = box.commit(aliases("sales: ana\n"), "a real change")
    attempt(box, changed)
    assert store_state(box) == kept
    assert daemon.stop() == 0

    # no private key byte in any output, log, state file or repo object
    for args in (("status",), ("history", "--format", "json")):
        done = box.gm(*args)
        outputs += [done.out, done.err]
    plan = box.gm("plan", "--repo", str(box.workdir.path), "--rev", "HEAD", "--base", "HEAD~3")
    outputs += [plan.out, plan.err]
    assert_no_key_bytes(box, "\n".join(outputs).encode() + daemon.log.read_bytes())


def key_fragments(box: Sandbox) -> list[bytes]:
    """What would betray a stored key: its PEM lines, its DER, a hash-free chunk of each."""
    found = []
    for pem in (box.state_dir / "dkim").rglob("*.pem"):
        lines = pem.read_bytes().splitlines()[1:-1]
        found += [line for line in lines if len(line) >= 40]
        der = b"".join(lines)
        found.append(der[100:140])
    return found


def assert_no_key_bytes(box: Sandbox, outputs: bytes) -> None:
    blobs = {"outputs": outputs}
    for path in box.state_dir.rglob("*"):
        if path.is_file() and "dkim" not in path.relative_to(box.state_dir).parts:
            blobs[str(path)] = path.read_bytes()
    blobs["repo objects"] = git(box, "cat-file", "--batch-all-objects", "--batch")
    blobs["mail log"] = (
        (box.root / "mail.log").read_bytes() if (box.root / "mail.log").exists() else b""
    )
    fragments = key_fragments(box)
    assert len(fragments) >= 2 * len(SELECTORS)
    for name, data in blobs.items():
        assert b"PRIVATE KEY" not in data, name
        for fragment in fragments:
            assert fragment not in data, name


def test_the_repo_s_own_post_data_hook_runs_first_and_its_verdict_counts(
    sandbox: Sandbox,
) -> None:
    box = sandbox
    box.write_host(policy={"repo_hooks": True})
    hook = box.workdir.path / "chasquid" / "hooks" / "post-data"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(HOOK_USER)
    hook.chmod(0o755)
    box.commit({MANIFEST_PATH: dkim_manifest(box, hooks=True)}, "sign, and keep our hook")
    box.apply_ok()
    assert (box.config_dir / "hooks" / "post-data.repo").read_text() == HOOK_USER
    before = size(box)
    box.send(ANA, "both hooks")
    message = newly_delivered(box, before, "both hooks")
    assert b"X-Repo-Hook: seen" in message
    assert message.count(b"DKIM-Signature:") == 2
    with pytest.raises(smtplib.SMTPDataError) as refused:
        box.send(ANA, "please REFUSE this")
    assert refused.value.smtp_code == 554


def test_chasquid_1_14_gets_native_key_files_and_no_hook(sandbox: Sandbox) -> None:
    box = sandbox
    box.commit({MANIFEST_PATH: dkim_manifest(box, version="1.14")}, "native DKIM")
    box.apply_ok()
    domain_dir = box.config_dir / "domains" / DOMAIN
    for selector in SELECTORS:
        key = domain_dir / f"dkim:{selector}.pem"
        info = key.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o640, 0)
        assert info.st_gid == _chasquid_gid()
        pem = key.read_bytes()
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, not PKCS#1
        assert pem.endswith(b"-----END PRIVATE KEY-----\n")
    assert not (box.config_dir / "hooks" / "post-data").exists()
    assert box.status()["drift"] == {"modified": [], "missing": [], "foreign": []}
    digest = hashlib.sha256((domain_dir / "dkim:s2026.pem").read_bytes()).hexdigest()
    assert (
        digest
        == hashlib.sha256((box.state_dir / "dkim" / DOMAIN / "s2026.pem").read_bytes()).hexdigest()
    )
    assert os.stat(box.state_dir / "dkim" / DOMAIN / "s2026.pem").st_mode & 0o077 == 0


def _chasquid_gid() -> int:
    return grp.getgrnam("chasquid").gr_gid
