"""Certificate renewals under the daemon: never worse, on the live revision.

A renewal lands as new bytes in the source files (the sandbox's ``files:``
source); what chasquid serves is read on 465 and compared by fingerprint.
A bad renewal is refused once, with its reason in ``status``, while the old
certificate stays served; the next change of the files is tried again. A
renewal while the tip fails is applied on the live revision; the tip keeps
its own record.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("apply_fixtures", "daemon_fixtures", "renewal_certs")

from apply_fixtures import (  # noqa: E402 - after the assertion rewrite is registered
    MANIFEST_PATH,
    USERS_PATH,
    Sandbox,
    poll,
)
from daemon_fixtures import SALES, StartDaemon, aliases, attempt  # noqa: E402
from renewal_certs import HOSTNAME, Issued, expired, issue, served_465  # noqa: E402

from gitops_mail.host.certs.source import when  # noqa: E402

pytest_plugins = ["apply_fixtures", "daemon_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]

STILL = "the live certificate is still served"


def land(box: Sandbox, cert: Issued) -> None:
    """A renewal in place: the key, then the chain, rewritten."""
    box.privkey.write_bytes(cert.key)
    box.fullchain.write_bytes(cert.fullchain)


def refused(box: Sandbox) -> dict[str, Any]:
    found: dict[str, Any] = box.status()["certificates_refused"]
    return found


BadRenewal = Callable[[Sandbox, Any], str]  # lands it, returns the expected reason


def _expired(box: Sandbox, ca: Any) -> str:
    cert = expired(ca)
    land(box, cert)
    return f"{box.fullchain} expired on {when(cert.not_after)}"


def _wrong_san(box: Sandbox, ca: Any) -> str:
    land(box, issue(ca, "wrong.example"))
    return f"{box.fullchain} does not cover {HOSTNAME} (it names wrong.example)"


def _key_mismatch(box: Sandbox, ca: Any) -> str:
    box.privkey.write_bytes(issue(ca).key)
    return f"the key in {box.privkey} does not match the certificate in {box.fullchain}"


def _garbage(box: Sandbox, ca: Any) -> str:
    box.fullchain.write_bytes(b"<html>502 Bad Gateway</html>\n")
    return f"{box.fullchain} holds no PEM certificate"


def _missing(box: Sandbox, ca: Any) -> str:
    box.fullchain.unlink()
    return f"fullchain file {box.fullchain} does not exist"


def _chain_order(box: Sandbox, ca: Any) -> str:
    cert = issue(ca)
    box.privkey.write_bytes(cert.key)
    box.fullchain.write_bytes(cert.ca + cert.fullchain)  # the issuer first
    return f"{box.fullchain} has the server's certificate at position 2, not first"


BAD: dict[str, BadRenewal] = {
    "expired": _expired,
    "wrong SAN": _wrong_san,
    "key mismatch": _key_mismatch,
    "garbage PEM": _garbage,
    "missing file": _missing,
    "chain out of order": _chain_order,
}


def test_a_renewal_in_place_is_served_on_465(
    sandbox: Sandbox, start_daemon: StartDaemon, test_ca: tuple[Any, Path]
) -> None:
    box = sandbox
    daemon = start_daemon(box)
    daemon.ready()
    cert = issue(test_ca[0])
    count = len(box.history())

    land(box, cert)

    poll(lambda: served_465(box) == cert.fingerprint, 20, "the renewed certificate on 465")
    poll(lambda: len(box.history()) > count, 20, "the renewal's record")
    assert box.history()[0]["result"] == "applied"
    assert refused(box) == {}
    assert daemon.stop() == 0


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_renewal_is_refused_once_the_old_certificate_stays_and_a_fixed_one_is_served(
    sandbox: Sandbox, start_daemon: StartDaemon, test_ca: tuple[Any, Path], case: str
) -> None:
    box = sandbox
    daemon = start_daemon(box)
    daemon.ready()
    old, live = served_465(box), box.tip()

    reason = f"certificate '{HOSTNAME}': " + BAD[case](box, test_ca[0])

    entry = poll(lambda: refused(box).get(HOSTNAME), 20, "the refusal")
    assert (entry["reason"], entry["live"]["fingerprint"]) == (reason, old)
    assert served_465(box) == old
    last = attempt(box, live, "unchanged")
    assert last["reason"] == reason
    status = box.run("status")
    assert f"refused:  {reason} ({STILL})" in status.out.splitlines()
    passes = daemon.status()["passes"]
    box.privkey.write_bytes(box.privkey.read_bytes())  # written again, the same bytes

    poll(lambda: daemon.status()["passes"] > passes, 20, "a pass for the rewritten key")
    assert len(daemon.events("certificate.refused")) == 1  # refused once, not every pass
    assert refused(box)[HOSTNAME]["refused_at"] == entry["refused_at"]
    fixed = issue(test_ca[0])
    land(box, fixed)
    poll(lambda: served_465(box) == fixed.fingerprint, 20, "the fixed renewal on 465")
    poll(lambda: box.history()[0]["result"] == "applied", 20, "the fixed renewal's record")
    assert refused(box) == {}
    assert [s for s in box.run("status").out.splitlines() if s.startswith("refused:")] == []
    assert daemon.stop() == 0


def test_a_renewal_while_the_tip_is_broken_is_served_and_the_tip_stays_failed(
    sandbox: Sandbox, start_daemon: StartDaemon, test_ca: tuple[Any, Path]
) -> None:
    box = sandbox
    daemon = start_daemon(box)
    daemon.ready()
    live = box.tip()
    carol = b'users: {\n  key: "carol"\n  value: {\n    denied: {}\n  }\n}\n'
    broken = box.commit(  # valid for our rules (1.13), refused by the real chasquid 1.11
        {USERS_PATH: box.users.ana + carol, MANIFEST_PATH: box.manifest(version="1.13")},
        "A receive-only user",
    )
    attempt(box, broken, "failed")
    cert = issue(test_ca[0])

    land(box, cert)

    poll(lambda: served_465(box) == cert.fingerprint, 20, "the renewal on 465")
    poll(lambda: box.history()[0]["revision"] == live, 20, "the renewal's record")
    assert box.history()[0]["result"] == "applied"
    assert [a["result"] for a in box.history() if a["revision"] == broken] == ["failed"]
    assert box.status()["live"] == live
    renewed = daemon.events("renewal.end")
    assert [(e["revision"], e["result"]) for e in renewed] == [(live, "applied")]
    assert daemon.stop() == 0


def test_a_first_install_for_another_name_is_an_error_unless_the_entry_allows_it(
    make_sandbox: Callable[..., Sandbox], test_ca: tuple[Any, Path]
) -> None:
    box = make_sandbox()  # nothing applied: no live certificate
    wrong = issue(test_ca[0], "wrong.example", "127.0.0.1")
    land(box, wrong)

    done = box.gm("apply")

    assert (done.code, done.out) == (1, "")
    assert done.err.splitlines()[0] == (
        f"gitops-mail: error: certificate '{HOSTNAME}': {box.fullchain} does not cover "
        f"{HOSTNAME} (it names wrong.example)"
    )
    assert not (box.config_dir / "certs").exists()
    allowed = box.manifest().replace("\ndomains:", "\n    allow_name_mismatch: true\ndomains:")
    box.commit({MANIFEST_PATH: allowed}, "a test server")
    box.apply_ok()
    assert served_465(box) == wrong.fingerprint


def test_a_push_while_a_renewal_is_refused_is_applied_with_the_live_certificate(
    sandbox: Sandbox, test_ca: tuple[Any, Path]
) -> None:
    box = sandbox
    old = served_465(box)
    bad = expired(test_ca[0])
    land(box, bad)
    revision = box.commit(aliases("sales: ana\n"), "sales")

    done = box.gm("apply")

    reason = f"certificate '{HOSTNAME}': {box.fullchain} expired on {when(bad.not_after)}"
    assert (done.code, done.err) == (0, "")
    assert done.out.splitlines()[-2:] == [
        f"applied {revision[:7]}: restarted chasquid, probes ok",
        f"warning: {reason}; {STILL}",
    ]
    assert box.rcpt(SALES) == 250
    assert served_465(box) == old
    assert box.history()[0]["reason"] == reason
    assert refused(box)[HOSTNAME]["code"] == "cert.expired"


def test_a_renewal_missed_while_the_daemon_was_down_is_served_at_start_the_tip_stays_failed(
    sandbox: Sandbox, start_daemon: StartDaemon, test_ca: tuple[Any, Path]
) -> None:
    box = sandbox
    live = box.tip()
    carol = b'users: {\n  key: "carol"\n  value: {\n    denied: {}\n  }\n}\n'
    broken = box.commit(
        {USERS_PATH: box.users.ana + carol, MANIFEST_PATH: box.manifest(version="1.13")},
        "A receive-only user",
    )
    assert box.gm("apply").code == 1
    cert = issue(test_ca[0])
    land(box, cert)

    daemon = start_daemon(box)

    poll(lambda: served_465(box) == cert.fingerprint, 20, "the renewal on 465")
    poll(lambda: box.history()[0]["revision"] == live, 20, "the renewal's record")
    assert box.history()[0]["result"] == "applied"
    assert [a["result"] for a in box.history() if a["revision"] == broken] == ["failed"]
    assert daemon.stop() == 0
