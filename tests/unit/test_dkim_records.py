"""DKIM records in the generated zone, read back from it, and the files render installs."""

from __future__ import annotations

import ast
import base64
import re

from support.repo import snapshot

from gitops_mail.core.dns.dkim import PublicKey, parse_value, published_keys, txt_value
from gitops_mail.core.dns.zone import committed_keys, render_zones, zone_path, zone_records
from gitops_mail.core.policy import HostPolicy
from gitops_mail.core.render import HOOK, REPO_HOOK, hook_source, render_tree
from gitops_mail.core.snapshot import MODE_EXEC, Entry
from gitops_mail.core.state import State, load_state
from gitops_mail.core.tree import FileSpec

RSA_P = base64.b64encode(bytes(range(256)) + bytes(38)).decode()  # 392 characters, like 2048
ED_P = base64.b64encode(bytes(32)).decode()
KEYS = {
    ("example.com", "s2026"): PublicKey("rsa", RSA_P),
    ("example.com", "s2025"): PublicKey("ed25519", ED_P),
}
PEM = b"-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n"
HOOK_BYTES = b"#!/bin/sh\nexit 0\n"


def manifest(selectors: str = "[s2026, s2025]", version: str = "1.11", hooks: bool = False) -> str:
    return (
        "version: 1\n"
        f'chasquid: {{version: "{version}", hooks: {"true" if hooks else "false"}}}\n'
        "certificates:\n  - name: mail.example.com\n    acme_sh: /root/.acme.sh/mail.example.com\n"
        "domains:\n"
        f"  example.com: {{dkim: {{selectors: {selectors}}}}}\n"
        "  example.org: {}\n"
    )


def state(files: dict[str, str | bytes | Entry] | None = None, **kwargs: object) -> State:
    base: dict[str, str | bytes | Entry] = {
        "gitops-mail.yaml": manifest(**kwargs),  # type: ignore[arg-type]
        "chasquid/chasquid.conf": 'hostname: "mail.example.com"\n',
        "chasquid/domains/example.com/aliases": "postmaster: ana@example.org\n",
        "chasquid/domains/example.org/aliases": "postmaster: ana@example.com\n",
        **(files or {}),
    }
    loaded = load_state(snapshot(base=base))
    assert loaded.problems == ()
    return loaded


def test_the_txt_value_reads_back_whatever_the_spacing_and_order() -> None:
    key = PublicKey("rsa", RSA_P)
    assert parse_value(txt_value(key)) == key
    assert parse_value(f"p = {RSA_P[:50]} {RSA_P[50:]} ;v=DKIM1 ; k=rsa") == key
    assert parse_value("v=DKIM1; k=rsa; p=") is None  # a revoked key publishes nothing
    assert parse_value("v=spf1 mx ~all") is None


def test_each_selector_s_key_is_published_in_strings_of_at_most_255_bytes() -> None:
    zone = render_zones(state(), KEYS)["dns/example.com.zone"].decode()
    lines = [line for line in zone.splitlines() if "_domainkey" in line or "DKIM:" in line]
    assert lines[0] == "; DKIM: the keys that sign mail from @example.com (selectors s2026, s2025)."
    rsa_line, ed_line = lines[1:]
    assert rsa_line.startswith("s2026._domainkey IN TXT  ")
    strings = re.findall(r'"([^"]*)"', rsa_line)
    assert [len(s) for s in strings] == [255, len(txt_value(KEYS["example.com", "s2026"])) - 255]
    assert "".join(strings) == f"v=DKIM1; k=rsa; p={RSA_P}"
    assert ed_line == f's2025._domainkey IN TXT  "v=DKIM1; k=ed25519; p={ED_P}"'


def test_the_zone_gives_back_the_keys_it_publishes() -> None:
    zone = render_zones(state(), KEYS)["dns/example.com.zone"]
    assert published_keys("example.com", zone) == {
        "s2026": KEYS["example.com", "s2026"],
        "s2025": KEYS["example.com", "s2025"],
    }
    committed = state({zone_path("example.com"): zone})
    assert committed_keys(committed) == KEYS
    assert render_zones(committed, committed_keys(committed))["dns/example.com.zone"] == zone


def test_a_selector_without_a_key_is_a_pending_record() -> None:
    records = zone_records(state(), {("example.com", "s2026"): KEYS["example.com", "s2026"]})
    dkim = [r for r in records["example.com"] if "_domainkey" in r.owner]
    assert [(r.name, r.value) for r in dkim] == [
        ("s2026._domainkey.example.com", f"v=DKIM1; k=rsa; p={RSA_P}"),
        ("s2025._domainkey.example.com", None),
    ]
    zone = render_zones(state())["dns/example.com.zone"].decode()
    assert (
        "; s2025._domainkey TXT: the server makes this key at its next apply; "
        "its record appears here then.\n" in zone
    )


PEMS = {"example.com": {"s2026": PEM, "s2025": PEM + b"2"}}


def test_chasquid_1_14_gets_one_pkcs8_key_file_per_selector_and_no_hook() -> None:
    tree = render_tree(state(version="1.14"), {}, dkim=PEMS)
    assert {p: s for p, s in tree.items() if "dkim" in p} == {
        "domains/example.com/dkim:s2026.pem": FileSpec(PEM, 0o640, "root", "chasquid"),
        "domains/example.com/dkim:s2025.pem": FileSpec(PEM + b"2", 0o640, "root", "chasquid"),
    }
    assert HOOK not in tree


def test_chasquid_1_11_gets_the_same_key_files_and_the_signing_hook() -> None:
    tree = render_tree(state(), {}, dkim=PEMS)
    assert tree["domains/example.com/dkim:s2026.pem"].mode == 0o640
    hook = tree[HOOK]
    assert (hook.mode, hook.owner, hook.group) == (0o755, "root", "root")
    text = hook.data.decode()
    assert text.startswith("#!/usr/bin/python3\n")
    assert "SIGNERS: dict[str, list] = {'example.com': ['example.com', 'example.com', " in text
    assert "['s2026', 's2025']]}" in text
    assert '\nREPO_HOOK = ""' in text
    assert b"PRIVATE KEY" not in hook.data


def test_the_repo_s_own_post_data_hook_still_runs_from_the_managed_one() -> None:
    files: dict[str, str | bytes | Entry] = {
        "chasquid/hooks/post-data": Entry(HOOK_BYTES, MODE_EXEC)
    }
    allowed = HostPolicy(repo_hooks=True)
    tree = render_tree(state(files, hooks=True), {}, policy=allowed, dkim=PEMS)
    assert tree[REPO_HOOK] == FileSpec(HOOK_BYTES, 0o755, "root", "root")
    assert "\nREPO_HOOK = 'hooks/post-data.repo'  # " in tree[HOOK].data.decode()
    without_dkim = render_tree(state(files, hooks=True), {}, policy=allowed)
    assert without_dkim[HOOK] == FileSpec(HOOK_BYTES, 0o755, "root", "root")
    assert REPO_HOOK not in without_dkim


def test_the_managed_hook_needs_neither_the_manifest_nor_the_policy() -> None:
    files: dict[str, str | bytes | Entry] = {
        "chasquid/hooks/post-data": Entry(HOOK_BYTES, MODE_EXEC)
    }
    for hooks, policy in ((True, HostPolicy()), (False, HostPolicy(repo_hooks=True))):
        tree = render_tree(state(files, hooks=hooks), {}, policy=policy, dkim=PEMS)
        assert tree[HOOK].data.startswith(b"#!/usr/bin/python3\n")
        assert '\nREPO_HOOK = ""' in tree[HOOK].data.decode()  # the repo's hook: not run
        assert REPO_HOOK not in tree


def test_only_the_manifest_s_selectors_are_installed() -> None:
    keys = {"example.com": {"s2026": PEM, "old": PEM}, "example.org": {"s1": PEM}}
    tree = render_tree(state(selectors="[s2026]"), {}, dkim=keys)
    assert sorted(p for p in tree if "dkim" in p) == ["domains/example.com/dkim:s2026.pem"]
    assert render_tree(state(), {}, dkim={}) == render_tree(state(), {})


def test_a_hostile_domain_or_selector_cannot_put_code_into_the_managed_hook() -> None:
    """The hook is the product's own file, run for every message whatever hooks: says:
    what a push controls (names) reaches it only as a Python literal."""
    hostile = 'x"]}\nimport os; os.system("id")  # \u2028'
    source = hook_source({hostile: [hostile, "s1'); print('pwned"]}, repo_hook=False).decode()
    tree = ast.parse(source)
    signers = next(
        node
        for node in tree.body
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "SIGNERS"
    )
    table = ast.literal_eval(signers.value)  # a literal, nothing else
    assert table[hostile.lower()][2] == [hostile, "s1'); print('pwned"]
    template = hook_source({}, repo_hook=False).decode().splitlines()
    lines = source.splitlines()
    assert len(lines) == len(template)  # one line changed, the table; nothing added
    assert [a for a, b in zip(lines, template, strict=True) if a != b] == [
        lines[signers.lineno - 1]
    ]
