"""``gitops-mail init DOMAIN DIR`` and ``gitops-mail import CHASQUID_DIR DIR``.

Both build a file tree in memory and hand it to ``git.write.init_repo``, which
creates the repo on branch ``main`` with a first commit. Private material
(TLS keys, DKIM keys) is never copied: the manifest records where it lives.
"""

from __future__ import annotations

import argparse
import json
import secrets
from pathlib import Path

from gitops_mail.core import domainname
from gitops_mail.core.formats.addresses import normalize_domain
from gitops_mail.core.formats.aliases.parse import Kind, parse_aliases
from gitops_mail.core.formats.users import db as U
from gitops_mail.core.snapshot import CHASQUID_DIR, MANIFEST, Entry
from gitops_mail.errors import UsageError
from gitops_mail.git import write as gitwrite
from gitops_mail.host import localfs

TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "example-conf"
EXAMPLE_DOMAIN = "example.com"
_TEXT_FILES = (MANIFEST, "chasquid/chasquid.conf", "/aliases")
_DOMAIN_FILES = ("users", "aliases", "dkim_selector")


def run(args: argparse.Namespace) -> int:
    if args.command == "init":
        return _init(args.domain, Path(args.directory))
    return _import(Path(args.chasquid_dir), Path(args.directory))


def _init(domain: str, directory: Path) -> int:
    why = domainname.name_error(domain)
    normal = normalize_domain(domain.rstrip("."))
    if why is not None or normal is None:
        raise UsageError(
            f"{domain!r} is not a domain name: it {why or 'cannot be normalised as chasquid does'}",
            "give the domain the server receives mail for, like example.com",
        )
    files = template_files(normal)
    commit = gitwrite.init_repo(directory, files, f"Scaffold the mail config of {normal}")
    print(f"created {directory} for {normal} (branch main, commit {commit[:7]})")
    print("next steps:")
    print(f"  1. edit {directory}/{MANIFEST}: the server's IPs and the certificate source")
    print(f"  2. edit {directory}/chasquid/domains/{normal}/aliases: where mail goes")
    print(f"  3. gitops-mail user passwd i@{normal} --repo {directory}: set the sending password")
    print(f"  4. gitops-mail validate --worktree --repo {directory}, then commit")
    return 0


def template_files(domain: str) -> dict[str, Entry]:
    """The example conf with ``example.com`` replaced by ``domain``.

    The example's users keep their names but get passwords nobody knows (a
    fresh random one each, never shown): the example's own hashes are public.
    """
    example = localfs.read_directory(TEMPLATE.resolve())
    out: dict[str, Entry] = {}
    for path, entry in example.files.items():
        data = entry.data
        if path == MANIFEST or path.endswith(_TEXT_FILES):
            data = data.replace(EXAMPLE_DOMAIN.encode(), domain.encode())
        elif path.endswith("/users"):
            data = _unknown_passwords(data, path)
        out[path.replace(EXAMPLE_DOMAIN, domain)] = Entry(data, entry.mode)
    return out


def _unknown_passwords(data: bytes, path: str) -> bytes:
    db, _ = U.parse_users(data, path)
    if db is None:
        return data
    for name in sorted(db.names()):
        db = U.set_user(db, name, U.hash_password(secrets.token_urlsafe(32)))
    return U.render_users(db)


def _import(chasquid_dir: Path, directory: Path) -> int:
    live = localfs.read_directory(chasquid_dir, prefix=CHASQUID_DIR + "/", skip=(".git", "certs"))
    files = {path: entry for path, entry in live.files.items() if _importable(path, entry)}
    skipped = sorted(set(live.files) - set(files))
    domains = _domain_dirs(live.directories)
    if "chasquid/chasquid.conf" not in files:
        raise UsageError(
            f"{chasquid_dir} does not look like a chasquid config dir: it has no chasquid.conf",
            "pass the directory chasquid runs with, usually /etc/chasquid",
        )
    if not domains:
        raise UsageError(
            f"{chasquid_dir} serves no domain yet: {chasquid_dir / 'domains'} has no "
            "<domain>/ directory (a freshly installed chasquid package has none), so there is "
            "nothing to import",
            f"start a new conf repo instead: gitops-mail init YOUR-DOMAIN {directory}; "
            f"or create {chasquid_dir / 'domains' / 'YOUR-DOMAIN'}/ and import again",
        )
    for name in domains:  # git keeps no empty directory; chasquid serves it all the same
        if not any(p.startswith(f"chasquid/domains/{name}/") for p in files):
            files[f"chasquid/domains/{name}/.gitkeep"] = Entry(b"")
    hooks = any(p.startswith("chasquid/hooks/") for p in files)
    pipes = any(_has_pipes(path, entry) for path, entry in files.items())
    certs = _certificates(chasquid_dir)
    manifest = import_manifest(domains, certs, hooks=hooks, pipes=pipes)
    files[MANIFEST] = Entry(manifest.encode())
    commit = gitwrite.init_repo(directory, files, f"Import the chasquid config of {chasquid_dir}")
    print(f"imported {chasquid_dir} into {directory} (branch main, commit {commit[:7]})")
    for path in skipped:
        print(f"  not imported: {path[len(CHASQUID_DIR) + 1 :]}")
    _print_certificates(chasquid_dir, certs)
    print(f"next: gitops-mail validate --repo {directory}")
    return 0


def _domain_dirs(directories: frozenset[str]) -> list[str]:
    prefix = "chasquid/domains/"
    return sorted({d[len(prefix) :].split("/")[0] for d in directories if d.startswith(prefix)})


def _has_pipes(path: str, entry: Entry) -> bool:
    if not path.endswith("/aliases"):
        return False
    parsed = parse_aliases(entry.data, path, path.split("/")[2])
    return any(r.kind is Kind.PIPE for a in parsed.aliases for r in a.recipients)


def _importable(path: str, entry: Entry) -> bool:
    parts = path.split("/")
    if not entry.is_regular:
        return False
    if parts[1] == "chasquid.conf" and len(parts) == 2:
        return True
    if parts[1] == "hooks" and len(parts) == 3:
        return True
    return parts[1] == "domains" and len(parts) == 4 and parts[3] in _DOMAIN_FILES


Source = tuple[str, str | dict[str, str]]


def _certificates(chasquid_dir: Path) -> list[tuple[str, Source]]:
    """Where each ``certs/<name>/`` comes from: a certbot or acme.sh dir, or files."""
    found: list[tuple[str, Source]] = []
    certs = chasquid_dir / "certs"
    for cert_dir in sorted(certs.iterdir()) if certs.is_dir() else []:
        chain, key = cert_dir / "fullchain.pem", cert_dir / "privkey.pem"
        if not chain.exists() or not key.exists():
            continue  # chasquid skips it too
        found.append((cert_dir.name, _source(chain.resolve(), key.resolve())))
    return found


def _source(chain: Path, key: Path) -> Source:
    real = chain.parent
    if "letsencrypt" in real.parts and real.parent.name in ("live", "archive"):
        return "certbot", str(real.parent.parent / "live" / real.name)
    if any(part == ".acme.sh" for part in real.parts):
        return "acme_sh", str(real)
    return "files", {"fullchain": str(chain), "key": str(key)}


def _print_certificates(chasquid_dir: Path, certs: list[tuple[str, Source]]) -> None:
    inside = chasquid_dir.resolve()
    for name, (kind, where) in certs:
        shown = where if isinstance(where, str) else where["fullchain"]
        print(f"  certificate {name}: {kind} {shown} (the key stays where it is)")
        if kind == "files" and Path(shown).is_relative_to(inside):
            print(
                f"    note: these files are inside {chasquid_dir}, which gitops-mail replaces "
                "on apply: move them elsewhere (e.g. /etc/ssl/chasquid/) and update "
                f"certificates: in {MANIFEST}"
            )


def import_manifest(
    domains: list[str], certs: list[tuple[str, Source]], *, hooks: bool, pipes: bool
) -> str:
    lines = [
        "# gitops-mail manifest, made by `gitops-mail import`.",
        "version: 1",
        "",
        "chasquid:",
        '  version: "1.11"    # the chasquid the server runs',
        f"  hooks: {'true' if hooks else 'false'}",
        f"  pipe_aliases: {'true' if pipes else 'false'}",
        "",
        "certificates:" + ("" if certs else " []"),
    ]
    for name, (kind, where) in certs:
        lines += [f"  - name: {_yaml(name)}", f"    {kind}: {_yaml(where)}"]
    lines += ["", "domains:"]
    lines += [f"  {_yaml(normalize_domain(d) or d)}: {{}}" for d in domains]
    return "\n".join(lines) + "\n"


def _yaml(value: str | dict[str, str]) -> str:
    """A YAML flow value (JSON is YAML), non-ASCII kept readable."""
    return json.dumps(value, ensure_ascii=False)
