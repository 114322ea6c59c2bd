"""The shape of the tree: what may live in the repo and where.

Repo content must not be able to make chasquid read or write outside its
config dir: no symlinks, no odd path components, no special files. Private
keys never belong in the repo at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from gitops_mail.core import domainname
from gitops_mail.core import problems as P
from gitops_mail.core.formats.addresses import normalize_domain
from gitops_mail.core.snapshot import CHASQUID_DIR, MANIFEST, MODE_GITLINK, Entry
from gitops_mail.core.state import CONF_PATH, State

_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
_BAD_COMPONENT = re.compile(r"[\x00-\x1f\x7f\\]")
DOMAIN_FILES = frozenset({"users", "aliases", "dkim_selector", ".gitkeep"})
TOP_FILES = frozenset({"chasquid.conf"})


def check_layout(state: State) -> list[P.Problem]:
    found: list[P.Problem] = []
    found += _required_files(state)
    for path, entry in sorted(state.snapshot.files.items()):
        found += _entry_problems(path, entry)
    found += _domain_dirs(state)
    return found


def _required_files(state: State) -> Iterator[P.Problem]:
    if state.snapshot.data(MANIFEST) is None:
        yield P.error(
            MANIFEST,
            None,
            "layout.no-manifest",
            "the manifest is missing",
            "create it (gitops-mail init DOMAIN DIR scaffolds a complete repo)",
        )
    if state.snapshot.data(CONF_PATH) is None:
        yield P.error(
            CONF_PATH,
            None,
            "layout.no-config",
            "chasquid's config file is missing",
            'add chasquid/chasquid.conf with at least `hostname: "mail.example.com"`',
        )
    if not state.domains:
        yield P.error(
            f"{CHASQUID_DIR}/domains",
            None,
            "layout.no-domains",
            "there is no domain: chasquid refuses to start without one",
            "add chasquid/domains/<domain>/aliases (or a users file) for each domain",
        )


def bad_component(path: str) -> str | None:
    """The first component of ``path`` that could climb out of a directory, if any."""
    for part in path.split("/"):
        if part in ("", ".", "..") or _BAD_COMPONENT.search(part):
            return part
    return None


def _entry_problems(path: str, entry: Entry) -> Iterator[P.Problem]:
    bad = bad_component(path)
    if bad is not None:
        yield P.error(
            path,
            None,
            "layout.bad-path",
            f"path component {bad!r} could escape the config dir",
            "rename the file to a plain name",
        )
    if entry.is_symlink:
        target = entry.data.decode("utf-8", "replace")
        yield P.error(
            path,
            None,
            "layout.symlink",
            f"is a symbolic link (to {target!r}): links could make chasquid read or write "
            "outside its config dir",
            "replace the link with the file itself",
        )
    elif entry.mode == MODE_GITLINK:
        yield P.error(
            path,
            None,
            "layout.submodule",
            "is a git submodule: its content is not in this repo",
            "copy the files in instead of linking another repository",
        )
    elif not entry.is_regular:
        yield P.error(
            path,
            None,
            "layout.special-file",
            "is not a regular file (device, FIFO or socket)",
            "remove it",
        )
    elif _PRIVATE_KEY.search(entry.data):
        yield P.error(
            path,
            None,
            "secret.private-key",
            "holds a private key: private keys must never be committed",
            "remove it, purge it from the history (git filter-repo) and replace the key; "
            "TLS keys come from the certificates: sources, DKIM keys are made on the server",
        )
    if bad is None and path.startswith(CHASQUID_DIR + "/") and entry.is_regular:
        yield from _chasquid_path(path, path[len(CHASQUID_DIR) + 1 :])


def _chasquid_path(path: str, rel: str) -> Iterator[P.Problem]:
    parts = rel.split("/")
    if parts[0] == "certs":
        yield P.error(
            path,
            None,
            "layout.certs-in-repo",
            "certificates do not live in the repo: gitops-mail copies them on the server",
            "remove chasquid/certs/ and name the certificate's source under certificates: "
            "in gitops-mail.yaml",
        )
    elif parts[0] == "hooks" and len(parts) == 2:
        return  # judged with the manifest, in checks.cross
    elif parts[0] == "domains" and len(parts) == 3 and parts[2] in DOMAIN_FILES:
        return
    elif parts[0] == "domains" and len(parts) == 2:
        yield P.error(
            path,
            None,
            "layout.domain-not-dir",
            "is a file where chasquid expects a domain directory",
            f"move it to chasquid/domains/{parts[1]}/ (users and aliases files go inside)",
        )
    elif len(parts) == 1 and rel in TOP_FILES:
        return
    else:
        yield P.warning(
            path,
            None,
            "layout.unknown-file",
            "chasquid does not read this file; gitops-mail will not install it",
            "remove it or move it out of chasquid/",
        )


def _domain_dirs(state: State) -> Iterator[P.Problem]:
    for name in state.domains:
        path = f"{CHASQUID_DIR}/domains/{name}"
        why = _dir_name_error(name)
        if why is not None:
            yield P.error(
                path,
                None,
                "layout.domain-name",
                f"domain directory name {name!r} {why}",
                "name each directory after the domain it receives mail for",
            )
            continue
        normal = normalize_domain(name)
        if normal != name:
            yield P.error(
                path,
                None,
                "layout.domain-not-normal",
                f"domain directory {name!r} is not in normal form (lower case, Unicode): "
                f"chasquid serves it as {normal!r}, and gitops-mail looks for that directory",
                f"rename the directory to chasquid/domains/{normal}",
            )


def _dir_name_error(name: str) -> str | None:
    """Why chasquid (``normalize.Domain``) or DNS cannot take ``name``, or None."""
    if normalize_domain(name) is None:
        return "is not a valid internationalised domain name: chasquid refuses to start"
    if name.endswith("."):
        return "ends with '.': chasquid would serve a domain no address uses"
    return domainname.name_error(name)
