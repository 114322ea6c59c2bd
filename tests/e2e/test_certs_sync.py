"""``gitops-mail certs sync``: a renewal applied on demand, as acme.sh's ``--reloadcmd``
or certbot's deploy hook run it when no daemon watches the files.

Each layout is written as its tool writes it (``renewal_certs.Layout``): acme.sh
ECC and RSA directories rewritten in place, certbot's live links moved to new
archive files, plain files rewritten in place. The command runs as a child
process, as the hook would; what chasquid serves is read on 465.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("apply_fixtures", "renewal_certs")

from apply_fixtures import MANIFEST_PATH, Sandbox  # noqa: E402
from renewal_certs import HOSTNAME, Layout, expired, issue, manifest_for, served_465  # noqa: E402

from gitops_mail.host.certs.source import when  # noqa: E402

pytest_plugins = ["apply_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]


def installed(box: Sandbox, ca: Any, kind: str) -> tuple[Layout, str]:
    """The sandbox's certificate entry moved to a ``kind`` layout, applied: (layout, leaf)."""
    layout = Layout(kind, box.root / "certs")
    first = issue(ca, rsa=kind == "acme-rsa")
    layout.write(first)
    box.commit({MANIFEST_PATH: manifest_for(box, layout)}, f"certificate from {kind}")
    box.apply_ok()
    assert served_465(box) == first.fingerprint
    return layout, first.fingerprint


@pytest.mark.parametrize("kind", ["acme-ecc", "acme-rsa", "certbot", "files"])
def test_certs_sync_serves_a_renewal_as_each_tool_writes_it(
    sandbox: Sandbox, test_ca: tuple[Any, Path], kind: str
) -> None:
    box = sandbox
    layout, old = installed(box, test_ca[0], kind)
    renewed = issue(test_ca[0], rsa=kind == "acme-rsa")
    layout.write(renewed)

    done = box.gm("certs", "sync", "--config", str(box.host_file))

    assert (done.code, done.err) == (0, "")
    assert done.out.startswith(
        f"certificate {HOSTNAME} renewed: SHA256 {old[:8]}… → {renewed.fingerprint[:8]}…, expires "
    )
    assert served_465(box) == renewed.fingerprint
    assert box.history()[0]["revision"] == box.tip()
    assert box.history()[0]["result"] == "applied"
    again = box.gm("certs", "sync")
    assert (again.code, again.out) == (
        0,
        "the live revision already serves the certificates on disk\n",
    )


def test_certs_sync_refuses_an_expired_renewal_exit_1_and_keeps_serving(
    sandbox: Sandbox, test_ca: tuple[Any, Path]
) -> None:
    box = sandbox
    layout, served = installed(box, test_ca[0], "certbot")
    bad = expired(test_ca[0])
    layout.write(bad)
    chain = layout.directory / "fullchain.pem"
    reason = f"certificate '{HOSTNAME}': {chain} expired on {when(bad.not_after)}"
    warning = f"warning: {reason}; the live certificate is still served"

    done = box.gm("certs", "sync")

    assert (done.code, done.out.splitlines()[-1]) == (1, warning)
    assert served_465(box) == served
    again = box.gm("certs", "sync")  # nothing changed since: the same answer, no new attempt
    assert (again.code, again.out) == (1, warning + "\n")
    fixed = issue(test_ca[0])
    layout.write(fixed)
    assert box.gm("certs", "sync").code == 0
    assert served_465(box) == fixed.fingerprint


def test_certs_sync_applies_the_live_revision_not_a_newer_tip(
    sandbox: Sandbox, test_ca: tuple[Any, Path]
) -> None:
    box = sandbox
    live = box.tip()
    newer = box.commit({"README": "not applied yet\n"}, "a commit nobody applied")
    renewed = issue(test_ca[0])
    box.privkey.write_bytes(renewed.key)
    box.fullchain.write_bytes(renewed.fullchain)

    done = box.gm("certs", "sync")

    assert done.code == 0, done.err
    assert served_465(box) == renewed.fingerprint
    assert box.status()["live"] == live
    assert [a["revision"] for a in box.history()].count(newer) == 0
