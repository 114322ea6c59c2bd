"""The pre-flight never reaches dovecot, whatever chasquid.conf says (real chasquid 1.11).

A staged chasquid.conf with ``dovecot_auth: true`` names two sockets; real
unix sockets listen there. chasquid, started by the pre-flight, must not
connect to either, and the pre-flight still passes: its verdict is about the
staged tree, and dovecot is the live server's business.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gitops_mail.host.preflight import preflight

if TYPE_CHECKING:
    from conftest import ConfigDir

pytestmark = [pytest.mark.netns, pytest.mark.chasquid]


@pytest.fixture
def dovecot() -> Iterator[dict[str, socket.socket]]:
    """Two listening unix sockets, as dovecot's auth-userdb and auth-client would be
    (in a short directory: a socket path is at most 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="dv-") as where:
        listening = {}
        for name in ("auth-userdb", "auth-client"):
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(f"{where}/{name}")
            sock.listen(4)
            sock.setblocking(False)
            listening[f"{where}/{name}"] = sock
        yield listening
        for sock in listening.values():
            sock.close()


def connections(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            peer, _ = sock.accept()
        except BlockingIOError:
            return count
        peer.close()
        count += 1


def test_dovecot_auth_in_the_staged_config_never_reaches_dovecot(
    tmp_path: Path, make_config_dir, dovecot: dict[str, socket.socket]
) -> None:
    config: ConfigDir = make_config_dir(tmp_path)
    userdb, client = dovecot
    with (config.path / "chasquid.conf").open("a") as out:
        out.write(
            f'dovecot_auth: true\ndovecot_userdb_path: "{userdb}"\n'
            f'dovecot_client_path: "{client}"\n'
        )

    result = preflight(config.path)

    assert {path: connections(sock) for path, sock in dovecot.items()} == {userdb: 0, client: 0}
    assert (result.ok, result.errors) == (True, ()), result.log
    assert "Dovecot auth: true" in result.log  # chasquid read it, and was pointed elsewhere
