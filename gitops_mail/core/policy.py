"""The host's policy: what a push may make this host do, decided by root, never pushed.

A pusher controls the mail configuration (users, aliases, domains, records).
Anything that reaches beyond it, a program chasquid runs, a file gitops-mail
or chasquid reads or writes, an address it connects to, is allowed here, in
the host settings (``policy:`` and ``limits:``), which no push can change.
The defaults allow nothing beyond chasquid's own defaults and the standard
acme.sh and certbot locations. ``None`` where a policy is expected means "no
host": a checkout or CI, where a check can only say which fields a host may
refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DELIVERY_AGENTS = ("maildrop",)  # chasquid's own default mail_delivery_agent_bin
DEFAULT_CERTIFICATE_DIRS = ("/root/.acme.sh", "/etc/letsencrypt")
DEFAULT_CHASQUID_WRITE_DIRS = ("/var/lib/chasquid", "/var/log/chasquid")
DEFAULT_PROBE_NETWORKS = ("127.0.0.0/8", "::1/128")
DEFAULT_DOVECOT_SOCKET_DIRS = ("/run/dovecot", "/var/run/dovecot")
MIB = 1 << 20


@dataclass(frozen=True)
class HostPolicy:
    """What pushed content may make this host do; each field names its setting."""

    # policy.delivery_agents: values chasquid.conf may give mail_delivery_agent_bin
    delivery_agents: tuple[str, ...] = DEFAULT_DELIVERY_AGENTS
    # policy.repo_hooks: whether chasquid/hooks/* from the repo are installed at all
    repo_hooks: bool = False
    # policy.pipe_aliases: whether "user: | command" aliases are allowed
    pipe_aliases: bool = False
    # policy.certificate_dirs: where acme_sh / certbot / files sources may be read from
    certificate_dirs: tuple[str, ...] = DEFAULT_CERTIFICATE_DIRS
    # policy.chasquid_write_dirs: where data_dir and mail_log_path may point
    chasquid_write_dirs: tuple[str, ...] = DEFAULT_CHASQUID_WRITE_DIRS
    # policy.probe_networks: where listen addresses (hence probes) may be
    probe_networks: tuple[str, ...] = DEFAULT_PROBE_NETWORKS
    # policy.dovecot_auth: whether chasquid.conf may turn dovecot_auth on
    dovecot_auth: bool = False
    # policy.dovecot_socket_dirs: where dovecot_userdb_path / dovecot_client_path may be
    dovecot_socket_dirs: tuple[str, ...] = DEFAULT_DOVECOT_SOCKET_DIRS


@dataclass(frozen=True)
class Limits:
    """Bounds on what one push may cost this host; each field names its setting."""

    # limits.file_bytes: the largest file (git blob) a revision may hold
    file_bytes: int = 10 * MIB
    # limits.revision_bytes: all the files of a revision together
    revision_bytes: int = 50 * MIB
    # limits.revision_files: the files and directories of a revision, counted per path
    revision_files: int = 20_000
    # limits.hook_seconds: how long a push hook may run before it is stopped
    hook_seconds: float = 60.0
    # limits.hook_memory_mb: the memory (heap and private mappings) a push hook may use
    hook_memory_mb: int = 1024
