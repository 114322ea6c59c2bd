"""Checks of ``chasquid.conf`` beyond what it takes to parse it.

chasquid starts happily with a hostname it guessed, a value it silently
ignores or a relative path into the directory gitops-mail replaces; it exits
at start on a field its version does not know or an address it cannot bind.
We say so before a commit goes live.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from gitops_mail.core import domainname
from gitops_mail.core.formats.chasquid_conf import FIELD_MIN_VERSION, LISTEN_FIELDS, ChasquidConfig
from gitops_mail.core.problems import Problem, Severity

_HOST_HINT = "use the server's DNS name, e.g. mail.example.com, the name your MX record points to"
_ADDRESS_HINT = 'write "systemd" or HOST:PORT, e.g. ":25" (every address) or "[2001:db8::1]:25"'
_INSIDE = "chasquid resolves it inside its config directory, which gitops-mail replaces on apply"
_MAIL_LOGS = ("<syslog>", "<stdout>", "<stderr>")
_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9}
_UNIT_NS |= {"m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]+)")
_MAX_DATA_MB = (2**63 - 1) // 2**20  # chasquid multiplies by 1 MiB in an int64


@dataclass
class _Report:
    """Collects problems about fields of one config, each on the line that sets it.

    ``add(..., line=N)`` puts one on line N instead (an item of a repeated field).
    """

    cfg: ChasquidConfig
    path: str
    found: list[Problem] = field(default_factory=list)

    def add(
        self, name: str, code: str, message: str, hint: str, *, line: int = 0, warn: bool = False
    ) -> None:
        severity = Severity.WARNING if warn else Severity.ERROR
        where = line or self.cfg.lines.get(name)
        self.found.append(Problem(self.path, where, code, message, hint, severity))


def check_config(
    cfg: ChasquidConfig, path: str, *, chasquid_version: tuple[int, int]
) -> list[Problem]:
    """Every problem of ``cfg`` (read from ``path``) for a server running ``chasquid_version``."""
    report = _Report(cfg, path)
    _versions(report, chasquid_version)
    for check in _CHECKS:
        check(report)
    return report.found


def _versions(report: _Report, version: tuple[int, int]) -> None:
    cfg, running = report.cfg, f"{version[0]}.{version[1]}"
    for name, since in FIELD_MIN_VERSION.items():
        if since > version and (name in cfg.explicit or name in cfg.lines):
            new = f"{since[0]}.{since[1]}"
            message = f"{name} needs chasquid {new} or newer; chasquid {running} will not start"
            hint = (
                f"remove {name} or upgrade chasquid to {new}; if the server already runs a newer"
                " chasquid, set chasquid.version in gitops-mail.yaml"
            )
            report.add(name, "conf.version", message, hint)


def _hostname(report: _Report) -> None:
    name = report.cfg.hostname
    if name is None:
        state = "empty" if "hostname" in report.cfg.ignored else "not set"
        message = f"hostname is {state}, so chasquid would use the machine's own name"
        hint = 'set hostname: "mail.example.com"; the repo cannot know the server\'s name'
        report.add("hostname", "conf.hostname.missing", message, hint)
    elif reason := _hostname_error(name):
        message = f'hostname "{name}" {reason}'
        report.add("hostname", "conf.hostname.invalid", message, _HOST_HINT)
    elif not name.isascii():
        a_label = domainname.to_ascii(name)
        message = f'hostname "{name}" is not ASCII; its A-label "{a_label}" is what goes in DNS'
        hint = (
            f'write hostname: "{a_label}": chasquid greets and sends EHLO with the name as written'
        )
        report.add("hostname", "conf.hostname.idna", message, hint, warn=True)


def _hostname_error(name: str) -> str | None:
    if _is_ip(name):
        return "is an IP address, not a DNS name"
    if name.endswith("."):
        return 'ends with "." (write it without the final dot)'
    return domainname.name_error(name)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _listen(report: _Report) -> None:
    cfg, seen = report.cfg, dict[tuple[str, str], str]()
    fields = [(name, getattr(cfg, name)) for name in LISTEN_FIELDS]
    fields += [("monitoring_address", (cfg.monitoring_address,))] if cfg.monitoring_address else []
    for name, values in fields:
        lines = cfg.item_lines.get(name, ())
        for i, address in enumerate(values):
            line = lines[i] if i < len(lines) else 0
            key = _address(report, name, address, line)
            if key in seen:
                where = "twice in" if seen[key] == name else "also in"
                message = f'{name} "{address}" is {where} {seen[key]}; chasquid cannot listen twice'
                hint = "keep each address in one place (chasquid exits when a listen fails)"
                report.add(name, "conf.listen.duplicate", message, hint, line=line)
            elif key:
                seen[key] = name


def _address(report: _Report, name: str, address: str, line: int) -> tuple[str, str] | None:
    """Report what is wrong with one listening address; its fixed (host, port) if it has one."""
    if address == "systemd" and name != "monitoring_address":
        return None
    problem = _address_problem(name, address)
    if problem is not None:
        code, message, hint, warn = problem
        report.add(name, code, message, hint, line=line, warn=warn)
        return None
    host, port, _ = _split_host_port(address)
    return host.lower(), str(int(port))


def _address_problem(name: str, address: str) -> tuple[str, str, str, bool] | None:
    if address == "":
        message = f"{name} has an empty address, which makes chasquid listen on a random port"
        return "conf.listen.empty", message, _ADDRESS_HINT, False
    _, port, why = _split_host_port(address)
    if not why and port in ("", "0"):
        why = "it has no fixed port, so chasquid would listen on a random one"
    elif not why and port.isdigit() and not 0 < int(port) < 65536:
        why = f"port {port} is out of range (1-65535)"
    if why:
        return "conf.listen.invalid", f'{name} "{address}": {why}', _ADDRESS_HINT, False
    if not port.isdigit():
        message = f'{name} "{address}" names port "{port}", which chasquid looks up as a service'
        return "conf.listen.port_name", message, "write the port number", True
    return None


def _split_host_port(address: str) -> tuple[str, str, str]:
    """Go's ``net.SplitHostPort``: host, port, and why not if it fails."""
    if address.startswith("["):
        end = address.find("]")
        if end < 0 or not address[end + 1 :].startswith(":"):
            return "", "", 'it is not [IPv6]:PORT (missing "]" or port)'
        return address[1:end], address[end + 2 :], ""
    host, colon, port = address.rpartition(":")
    if not colon:
        return "", "", "it is not HOST:PORT (no port)"
    if ":" in host:
        return "", "", "an IPv6 address needs brackets, like [::1]:25"
    return host, port, ""


def _monitoring(report: _Report) -> None:
    address = report.cfg.monitoring_address
    host, port, why = _split_host_port(address)
    local = host == "localhost" or (_is_ip(host) and ipaddress.ip_address(host).is_loopback)
    if address and not why and not local:
        message = (
            f'monitoring_address "{address}" is reachable from other machines, and'
            " chasquid's monitoring server has no authentication"
        )
        hint = f'listen on loopback, e.g. "127.0.0.1:{port}", and reach it through SSH'
        report.add("monitoring_address", "conf.monitoring.exposed", message, hint, warn=True)


def _sizes(report: _Report) -> None:
    cfg, hint = report.cfg, "set the largest message size in megabytes, e.g. max_data_size_mb: 50"
    if "max_data_size_mb" in cfg.ignored:
        value = cfg.ignored["max_data_size_mb"]
        message = f"max_data_size_mb must be greater than 0 (it is {value}; chasquid uses 50)"
        report.add("max_data_size_mb", "conf.max_data_size", message, hint)
    elif cfg.max_data_size_mb > _MAX_DATA_MB:
        message = f"max_data_size_mb {cfg.max_data_size_mb} is too large: in bytes it overflows"
        report.add("max_data_size_mb", "conf.max_data_size", message, hint)


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return f'"{value}"' if isinstance(value, str) else str(value)


def _ignored(report: _Report) -> None:
    for name, value in report.cfg.ignored.items():
        used = getattr(report.cfg, name)
        if name not in ("hostname", "max_data_size_mb") and value != used:
            message = f"{name}: {_show(value)} is ignored; chasquid uses {_show(used)}"
            hint = f"remove the {name} line, or set the value you mean"
            report.add(name, "conf.ignored", message, hint, warn=True)


def _paths(report: _Report) -> None:
    cfg = report.cfg
    if not cfg.data_dir.startswith("/"):
        message = f'data_dir "{cfg.data_dir}" is a relative path: {_INSIDE}'
        hint = 'use an absolute path such as "/var/lib/chasquid"'
        report.add("data_dir", "conf.data_dir.relative", message, hint)
    mda = cfg.mail_delivery_agent_bin
    if "/" in mda and not mda.startswith("/"):
        message = f'mail_delivery_agent_bin "{mda}" is a relative path: {_INSIDE}'
        hint = 'use an absolute path (a name without "/" is looked up in chasquid\'s PATH)'
        report.add("mail_delivery_agent_bin", "conf.mda.relative", message, hint, warn=True)
    log = cfg.mail_log_path
    if log not in _MAIL_LOGS and not log.startswith("/"):
        what = "not <syslog>, <stdout> or <stderr> but a file:" if log[:1] == "<" else "relative:"
        message = f'mail_log_path "{log}" is {what} {_INSIDE}'
        hint = 'use <syslog>, <stderr> or an absolute path such as "/var/log/chasquid/mail.log"'
        report.add("mail_log_path", "conf.mail_log", message, hint, warn=True)


def _dovecot(report: _Report) -> None:
    for name in ("dovecot_userdb_path", "dovecot_client_path"):
        if getattr(report.cfg, name) and not report.cfg.dovecot_auth:
            message = f"{name} has no effect: dovecot_auth is not true"
            hint = f"set dovecot_auth: true, or remove {name}"
            report.add(name, "conf.dovecot.unused", message, hint, warn=True)


def _user_chars(report: _Report) -> None:
    for name in ("suffix_separators", "drop_characters"):
        value = getattr(report.cfg, name)
        bad = ['"@"'] if "@" in value else []
        bad += ["whitespace"] if any(c.isspace() for c in value) else []
        if bad:
            message = f'{name} "{value}" contains {" and ".join(bad)}'
            hint = 'list only characters of the part before "@", e.g. "+" or "-+"'
            report.add(name, f"conf.{name}", message, hint)
    separators = report.cfg.suffix_separators
    if "+" not in separators:
        message = (
            f'suffix_separators "{separators}" lacks "+": bounces of mail chasquid forwarded'
            " (sent as user+fwd_from=...) would not reach the user"
        )
        hint = 'add "+", e.g. suffix_separators: "+-"'
        report.add("suffix_separators", "conf.suffix_separators", message, hint, warn=True)


def _give_up(report: _Report) -> None:
    value, name = report.cfg.give_up_send_after, "give_up_send_after"
    seconds = _go_duration(value)
    if seconds is None:
        message = f'{name} "{value}" is not a duration chasquid understands; it would not start'
        hint = 'write a duration such as "48h" or "90m" (days are not a unit)'
        report.add(name, f"conf.{name}", message, hint)
    elif seconds <= 0:
        message = f'{name} "{value}" is not positive; chasquid ignores it and uses 20h'
        hint = 'use a positive duration such as "20h"'
        report.add(name, f"conf.{name}", message, hint, warn=True)


def _go_duration(text: str) -> float | None:
    """Seconds in Go's ``time.ParseDuration`` syntax, or ``None`` if Go rejects it."""
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in ("-", "+") else text
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(body) or not body:
        part = _DURATION_PART.match(body, pos)
        if part is None or part.group(1) in ("", ".") or part.group(2) not in _UNIT_NS:
            return None
        total += float(part.group(1)) * _UNIT_NS[part.group(2)]
        pos = part.end()
    return None if total > 2**63 else sign * total / 1e9


_CHECKS: tuple[Callable[[_Report], None], ...] = (
    _hostname,
    _listen,
    _monitoring,
    _sizes,
    _ignored,
    _paths,
    _dovecot,
    _user_chars,
    _give_up,
)
