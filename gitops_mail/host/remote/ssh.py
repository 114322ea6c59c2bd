"""The only module that imports fabric: log in to a host, run scripts as root, copy files.

Scripts go to ``sh -s`` on standard input (no quoting of the whole script, no
length limit), behind ``sudo -n`` when the login user is not root. Host keys
are checked against the known_hosts file (the SSH config's
``UserKnownHostsFile``, else ``~/.ssh/known_hosts``): an unknown host is
refused unless ``accept_new`` (then its key is saved there, as OpenSSH's
``StrictHostKeyChecking=accept-new`` does), and a changed key always is.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import paramiko
from fabric import Connection

from gitops_mail.core.deploy.target import Target
from gitops_mail.errors import GitopsMailError

CONNECT_TIMEOUT = 10
STAGE_PREFIX = "/tmp/gitops-mail-deploy."  # noqa: S108 - made by mktemp, on the host


class RemoteError(GitopsMailError):
    """A host could not be reached, or a command on it failed."""


@dataclass(frozen=True)
class RemoteResult:
    code: int
    stdout: str
    stderr: str


def _load_known(client: paramiko.SSHClient, known: Path) -> None:
    """The host keys of ``known``, line by line as OpenSSH reads it: a line paramiko cannot
    read (``@cert-authority``, ``@revoked``, a damaged one) is skipped, not fatal."""
    try:
        lines = known.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise RemoteError(f"cannot read the known hosts {known}: {exc.strerror}") from exc
    keys = client.get_host_keys()
    for line in lines:
        if not line.strip() or line.lstrip().startswith(("#", "@")):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except Exception:  # noqa: S112 - paramiko's InvalidHostKey and decode errors
            continue
        if entry is not None and entry.key is not None:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)


def _why_not(exc: BaseException) -> str:
    """ "Connection refused", not paramiko's "Unable to connect to port 22 on 1.2.3.4"."""
    errors = getattr(exc, "errors", None)  # paramiko's NoValidConnectionsError, per address
    if isinstance(errors, dict) and errors:
        exc = next(iter(errors.values()))
    return str(getattr(exc, "strerror", None) or exc)


class _SaveNewKey(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]  # paramiko: no types
    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.path.open("a") as known:  # one line added: the file's others stay as they are
            known.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class Session:
    """One SSH connection to one host; ``close`` removes its staging directory."""

    def __init__(
        self, target: Target, *, accept_new: bool = False, timeout: float = CONNECT_TIMEOUT
    ):
        self.target = target
        self.conn = Connection(
            target.host, user=target.user, port=target.port, connect_timeout=int(timeout)
        )
        known = Path(os.path.expanduser(self._known_hosts()))
        client = self.conn.client
        if known.exists():
            _load_known(client, known)
        client.set_missing_host_key_policy(
            _SaveNewKey(known) if accept_new else paramiko.RejectPolicy()
        )
        self.login, self.stage = self.conn.user, ""
        try:
            self._open()
            self.stage = self._run_plain(f"mktemp -d {STAGE_PREFIX}XXXXXX").stdout.strip()
        except BaseException:
            self.conn.close()
            raise

    def _known_hosts(self) -> str:
        value = self.conn.ssh_config.get("userknownhostsfile", "~/.ssh/known_hosts")
        return str(value).split()[0]

    def _open(self) -> None:
        where = self.target.spec
        try:
            self.conn.open()
        except paramiko.BadHostKeyException as exc:
            raise RemoteError(
                f"{where}: the host key is not the one known_hosts has for it",
                "someone may be in the middle, or the host was reinstalled: check the key "
                "with its owner, then remove the old line from known_hosts",
            ) from exc
        except paramiko.AuthenticationException as exc:
            raise RemoteError(
                f"{where}: SSH login refused ({exc})",
                "log in with a key the host accepts: ssh-copy-id, or IdentityFile in ~/.ssh/config",
            ) from exc
        except paramiko.SSHException as exc:
            unknown = "not found in known_hosts" in str(exc)
            raise RemoteError(
                f"{where}: {'the host key is unknown' if unknown else exc}",
                "check the key, then pass --accept-new-host-key (or ssh to it once)"
                if unknown
                else "check the address and that sshd runs there",
            ) from exc
        except (OSError, EOFError) as exc:
            raise RemoteError(
                f"{where}: cannot connect: {_why_not(exc)}",
                "check the address and port, and that sshd runs and is reachable",
            ) from exc

    @property
    def as_root(self) -> bool:
        return bool(self.login == "root")

    def run(self, script: str, *, check: bool = True, timeout: float = 600) -> RemoteResult:
        """``script`` through ``sh -s`` as root; ``RemoteError`` on a non-zero exit if ``check``."""
        shell = "sh -s" if self.as_root else "sudo -n sh -s"
        done = self._run(shell, script, timeout)
        if check and done.code != 0:
            said = (done.stderr.strip() or done.stdout.strip())[-1500:]
            raise RemoteError(
                f"{self.target.spec}: a command failed (exit {done.code}): {said}",
                "sudo needs a password: allow it without one (NOPASSWD) or log in as root"
                if "sudo:" in said and "password" in said
                else "",
            )
        return done

    def _run_plain(self, command: str) -> RemoteResult:
        done = self._run(command, None, 60)
        if done.code != 0:
            raise RemoteError(f"{self.target.spec}: {command!r} failed: {done.stderr.strip()}")
        return done

    def _run(self, command: str, script: str | None, timeout: float) -> RemoteResult:
        """``command`` on a channel of its own, ``script`` on its stdin, then EOF.

        paramiko's channel, not fabric's ``run``: invoke feeds stdin a chunk every
        10 ms and never sends EOF, which would leave ``sh -s`` waiting.
        """
        try:
            channel = self.conn.client.get_transport().open_session(timeout=timeout)
            channel.exec_command(command)
            channel.sendall((script or "").encode())
            channel.shutdown_write()
            channel.settimeout(timeout)
            out = channel.makefile("rb").read()  # stderr waits in paramiko's buffer meanwhile
            err = channel.makefile_stderr("rb").read()
            code = channel.recv_exit_status()
            channel.close()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise RemoteError(f"{self.target.spec}: the connection failed: {exc}") from exc
        return RemoteResult(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def put(self, data: bytes | Path, remote: str) -> None:
        """Copy bytes, or a local file, to ``remote`` (as the login user: in ``stage``)."""
        source = str(data) if isinstance(data, Path) else io.BytesIO(data)
        try:
            self.conn.put(source, remote=remote)
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteError(f"{self.target.spec}: copying to {remote} failed: {exc}") from exc

    def get(self, remote: str, local: Path) -> None:
        try:
            self.conn.get(remote, local=str(local))
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteError(f"{self.target.spec}: copying {remote} back failed: {exc}") from exc

    def close(self) -> None:
        try:
            if self.stage.startswith(STAGE_PREFIX):  # as root: an adoption leaves root's files
                self.run(f"rm -rf {self.stage}", check=False, timeout=60)
        except RemoteError:
            pass  # the host went away: its /tmp is its own to clean
        finally:
            self.conn.close()
