"""A real OpenSSH server for deploy tests: throwaway keys, one sshd per pretend host.

Each ``Sshd`` is ``/usr/sbin/sshd -D`` on its own loopback address
(127.0.0.2, 127.0.0.3, ...: Linux routes all of 127.0.0.0/8 to ``lo``) and a
free port, inside the private network namespace. Root logs in with the
client key (``authorized_keys_root`` in the server's directory); any other
user with its own ``~/.ssh/authorized_keys`` (the pusher deploy creates).
``ClientKeys.write_ssh_config`` points the client side (paramiko through
``~/.ssh/config``, OpenSSH through ``GIT_SSH_COMMAND``) at the keys and at a
known_hosts file that holds exactly the servers started.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from support.wait import poll

SSHD = "/usr/sbin/sshd"
CONFIG = """\
ListenAddress {address}:{port}
HostKey {host_key}
PidFile {root}/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys {root}/authorized_keys_%u
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""


def keygen(path: Path, comment: str) -> Path:
    """A new ed25519 key pair at ``path`` and ``path.pub``; the public half's path."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_name(path.name + ".pub")


@dataclass
class Sshd:
    address: str
    port: int
    root: Path
    host_key: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def spec(self) -> str:
        return f"root@{self.address}:{self.port}"

    @property
    def log(self) -> str:
        path = self.root / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, authorized: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "authorized_keys_root").write_text(authorized.read_text())
        config = self.root / "sshd_config"
        config.write_text(
            CONFIG.format(
                address=self.address, port=self.port, host_key=self.host_key, root=self.root
            )
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        self.process = subprocess.Popen(
            [SSHD, "-D", "-f", str(config), "-E", str(self.root / "sshd.log")],
            stdin=subprocess.DEVNULL,
        )
        poll(self._listening, 10, f"sshd on {self.address}:{self.port}")

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"sshd exited {self.process.returncode}: {self.log}")
        with socket.socket() as sock:
            return sock.connect_ex((self.address, self.port)) == 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@dataclass
class ClientKeys:
    """The deployer's side: its key pair, its ssh config and known_hosts."""

    root: Path
    key: Path = field(init=False)
    public: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.key = self.root / "id_ed25519"
        self.public = keygen(self.key, "deployer@test")

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    def trust(self, server: Sshd, host_public: Path | None = None) -> None:
        """Add ``server``'s host key (or another key, to play a changed one) to known_hosts."""
        key = (host_public or server.host_key.with_name(server.host_key.name + ".pub")).read_text()
        kind, blob = key.split()[:2]
        with self.known_hosts.open("a") as out:
            out.write(f"[{server.address}]:{server.port} {kind} {blob}\n")

    def write_ssh_config(self, home: Path) -> Path:
        """``home/.ssh/config`` for paramiko (it reads $HOME) and OpenSSH (``ssh -F``)."""
        ssh = home / ".ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        config = ssh / "config"
        config.write_text(
            "Host 127.0.0.*\n"
            f"  IdentityFile {self.key}\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.known_hosts}\n"
            "  StrictHostKeyChecking yes\n"
            "  BatchMode yes\n"
            "  ConnectTimeout 5\n"
        )
        return config
