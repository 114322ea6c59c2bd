"""The unit and the host settings a deploy installs: the files in ``deploy/``, with its paths.

``deploy/gitops-mail.service`` and ``deploy/gitops-mail.yaml`` name the default
paths (``/usr/local/bin/gitops-mail``, ``/srv/mail-conf.git``, ...). A deploy
with other paths (another repo, a test's temporary root) installs them with
its own paths in their place; with the defaults they are installed as they are.
The settings keep every other line, the ``policy:`` defaults included.
"""

from __future__ import annotations

import json
import re

from gitops_mail.core.deploy.layout import Layout
from gitops_mail.errors import GitopsMailError

DEFAULTS = Layout()


class TemplateError(GitopsMailError):
    """A file in deploy/ no longer has a line deploy fills in."""


def render_unit(template: str, layout: Layout) -> str:
    text = template
    for default, wanted in (
        (DEFAULTS.link, layout.at(layout.link)),
        (DEFAULTS.repo, layout.at(layout.repo)),
        (DEFAULTS.settings, layout.at(layout.settings)),
    ):
        if default not in text:
            raise TemplateError(
                f"deploy/gitops-mail.service does not name {default} any more",
                "deploy fills in its paths there: update core/deploy/texts.py with the unit",
            )
        text = text.replace(default, wanted)
    return text


def render_settings(template: str, layout: Layout, host: str | None = None) -> str:
    """The settings with ``layout``'s paths, and ``host: NAME`` when the manifest names hosts."""
    text = _paths(template, layout)
    if host is None:
        return text
    line = f"host: {host}\n"
    found = re.search(r"^host:.*\n?", text, flags=re.MULTILINE)
    if found is not None:
        return text[: found.start()] + line + text[found.end() :]
    repo = re.search(r"^repo:.*\n", text, flags=re.MULTILINE)
    assert repo is not None  # noqa: S101 - _paths wrote it
    said = "# Which of the conf repo's hosts: this server is (written by gitops-mail deploy).\n"
    return text[: repo.end()] + said + line + text[repo.end() :]


def _paths(template: str, layout: Layout) -> str:
    values = {
        ("", "repo"): layout.at(layout.repo),
        ("", "branch"): layout.branch,
        ("", "state_dir"): layout.at(layout.state_dir),
        ("chasquid", "config_dir"): layout.at(layout.chasquid_dir),
        ("chasquid", "service"): layout.chasquid_service,
    }
    lines, section, seen = template.splitlines(keepends=True), "", set()
    for i, line in enumerate(lines):
        match = re.match(r"^( *)([a-z_]+):(.*)$", line.rstrip("\n"))
        if match is None:
            continue
        indent, key, _ = match.groups()
        if not indent:
            section = key
        where = ("", key) if not indent else (section, key)
        if where in values and indent in {"", "  "}:
            lines[i] = f"{indent}{key}: {_scalar(values[where])}\n"
            seen.add(where)
    missing = sorted(".".join(filter(None, k)) for k in set(values) - seen)
    if missing:
        raise TemplateError(
            f"deploy/gitops-mail.yaml has no line for {', '.join(missing)}",
            "deploy fills these in: keep them in the example settings",
        )
    return "".join(lines)


def _scalar(value: str) -> str:
    """A YAML scalar: plain when it is a plain path or word, else JSON (which YAML reads)."""
    return value if re.fullmatch(r"[A-Za-z0-9_./-]+", value) else json.dumps(value)
