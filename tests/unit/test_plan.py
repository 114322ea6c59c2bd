"""Plans: every kind of change, the action chasquid needs, and no secret anywhere."""

from __future__ import annotations

import base64
import json

import pytest
from support.repo import Files, snapshot

from gitops_mail.core import report
from gitops_mail.core.checks.validate import validate
from gitops_mail.core.formats.users.db import (
    Denied,
    Plain,
    Scheme,
    Scrypt,
    User,
    UserDB,
    render_users,
)
from gitops_mail.core.plan.make import make_plan
from gitops_mail.core.plan.model import (
    WHY_CERTS,
    WHY_CONFIG,
    WHY_DEPENDS,
    WHY_DNS,
    WHY_DOMAINS,
    WHY_GONE_USERS,
    WHY_HOOKS,
    WHY_NEW_USERS,
    WHY_SETTINGS,
    Action,
    Change,
    Plan,
)
from gitops_mail.core.snapshot import MODE_EXEC, Entry
from gitops_mail.core.state import State, load_state

MANIFEST = """\
version: 1
chasquid:
  version: "1.13"
  hooks: true
certificates:
  - name: mail.example.com
    acme_sh: /root/.acme.sh/mail.example.com_ecc
domains:
  example.com:
    spf: {include: [_spf.google.com]}
"""
CONF = 'hostname: "mail.example.com"\n'
ALIASES = "postmaster: owner@gmail.com\nsales: bob@fastmail.com\nteam: sales, i\n"
SALT_1, KEY_1 = b"SALTsaltSALT0001", b"KEYkeyKEYkey0001" * 2
SALT_2, KEY_2 = b"SALTsaltSALT0002", b"KEYkeyKEYkey0002" * 2
PLAIN = b"plain-text-secret"
SCRYPT_1 = Scrypt(14, 8, 1, 32, SALT_1, KEY_1)
SCRYPT_2 = Scrypt(14, 8, 1, 32, SALT_2, KEY_2)
RELOAD_111 = "users and aliases of a running domain are re-read by chasquid's 30 s reload"
USERS = "chasquid/domains/example.com/users"
ALIASES_PATH = "chasquid/domains/example.com/aliases"


def users(**schemes: Scheme) -> bytes:
    return render_users(UserDB(tuple(User(name, s, 0) for name, s in schemes.items())))


BASE: dict[str, str | bytes | Entry] = {
    "gitops-mail.yaml": MANIFEST,
    "chasquid/chasquid.conf": CONF,
    ALIASES_PATH: ALIASES,
    USERS: users(i=SCRYPT_1),
}


def state(changes: Files | None = None, name: str = "b") -> State:
    return load_state(snapshot(changes, base=BASE, name=name, revision=name * 40))


def plan(
    changes: Files,
    before: Files | None = None,
) -> Plan:
    return make_plan(state(before, "a"), state(changes, "b"))


def rows(p: Plan) -> list[tuple[str, str, str, str | None, str | None]]:
    return [(c.area, c.op, c.subject, c.before, c.after) for c in p.changes]


def test_no_change_is_an_empty_plan() -> None:
    p = plan({})
    assert p.changes == ()
    assert p.action is Action.NONE
    assert p.reasons == ()
    assert report.plan_text(p) == (
        "Plan: aaaaaaa -> bbbbbbb\n  no changes\nchasquid: nothing to do\n"
    )


# --- domains ---------------------------------------------------------------------


def test_domain_added_with_its_aliases() -> None:
    p = plan({"chasquid/domains/example.org/aliases": "postmaster: owner@gmail.com\n"})
    assert rows(p) == [
        ("domain", "added", "example.org", None, None),
        ("alias", "added", "postmaster@example.org", None, "owner@gmail.com"),
    ]
    assert p.action is Action.RESTART
    assert p.reasons == (WHY_DOMAINS,)


def test_domain_removed_with_its_users_and_aliases() -> None:
    p = plan(
        {ALIASES_PATH: None, USERS: None, "chasquid/domains/example.org/aliases": "*: a@b.c\n"}
    )
    assert rows(p) == [
        ("domain", "added", "example.org", None, None),
        ("domain", "removed", "example.com", None, None),
        ("user", "removed", "i@example.com", None, None),
        ("alias", "removed", "postmaster@example.com", "owner@gmail.com", None),
        ("alias", "removed", "sales@example.com", "bob@fastmail.com", None),
        ("alias", "removed", "team@example.com", "bob@fastmail.com, i@example.com", None),
        ("catch-all", "added", "*@example.org", None, "a@b.c"),
    ]
    assert {c.action for c in p.changes} == {Action.RESTART}


# --- users ------------------------------------------------------------------------


SECRETS = (SALT_1, KEY_1, SALT_2, KEY_2, PLAIN)


def _secret_forms(secret: bytes) -> list[str]:
    return [
        secret.decode("latin-1"),
        secret.hex(),
        base64.b64encode(secret).decode(),
        "".join(f"\\x{b:02x}" for b in secret),
        secret[:8].decode("latin-1"),
    ]


def _assert_no_secret(p: Plan) -> None:
    for text in (report.plan_text(p), report.plan_markdown(p), report.plan_json(p), repr(p)):
        for secret in SECRETS:
            for form in _secret_forms(secret):
                assert form not in text


@pytest.mark.parametrize(
    ("before", "after", "op"),
    [
        (SCRYPT_1, SCRYPT_2, "password changed"),
        (SCRYPT_1, Denied(), "made receive-only"),
        (Denied(), SCRYPT_2, "can log in again (password set)"),
        (SCRYPT_1, Plain(PLAIN), "password scheme changed (scrypt to plain)"),
        (Plain(PLAIN), SCRYPT_1, "password scheme changed (plain to scrypt)"),
        (Plain(PLAIN), Plain(PLAIN + b"2"), "password changed"),
    ],
)
def test_user_changes_never_show_a_secret(before: Scheme, after: Scheme, op: str) -> None:
    p = plan({USERS: users(i=after)}, {USERS: users(i=before)})
    assert rows(p) == [("user", op, "i@example.com", None, None)]
    assert (p.action, p.reasons) == (Action.RELOAD, (RELOAD_111,))
    assert report.change_line(p.changes[0]) == f"~ user i@example.com: {op}"
    _assert_no_secret(p)


def test_user_added_and_removed() -> None:
    p = plan({USERS: users(bob=SCRYPT_2, carol=Plain(PLAIN), dave=Denied())})
    assert rows(p) == [
        ("user", "added", "bob@example.com", None, "scrypt"),
        ("user", "added", "carol@example.com", None, "plain"),
        ("user", "added", "dave@example.com", None, "receive-only"),
        ("user", "removed", "i@example.com", None, None),
    ]
    assert [report.change_line(c) for c in p.changes] == [
        "+ user bob@example.com -> scrypt",
        "+ user carol@example.com -> plain",
        "+ user dave@example.com -> receive-only",
        "- user i@example.com",
    ]
    _assert_no_secret(p)


def test_the_same_password_hashed_again_is_still_a_change() -> None:
    p = plan({USERS: users(i=Scrypt(14, 8, 1, 32, SALT_2, KEY_1))})
    assert rows(p) == [("user", "password changed", "i@example.com", None, None)]


def test_a_users_file_that_does_not_parse_lists_no_user_change() -> None:
    p = make_plan(state({}, "a"), new := state({USERS: b"users: {"}, "b"), ())
    assert new.domains["example.com"].users is None
    assert rows(p) == []


# --- aliases and catch-alls ---------------------------------------------------------


def test_alias_added_removed_changed_with_resolution() -> None:
    p = plan({ALIASES_PATH: "postmaster: me@gmail.com\nteam: sales, i\nsupport: i\n"})
    assert rows(p) == [
        ("alias", "changed", "postmaster@example.com", "owner@gmail.com", "me@gmail.com"),
        ("alias", "removed", "sales@example.com", "bob@fastmail.com", None),
        ("alias", "added", "support@example.com", None, "i@example.com"),
        (
            "alias",
            "resolution changed",
            "team@example.com",
            "bob@fastmail.com, i@example.com",
            "sales@example.com, i@example.com",
        ),
    ]
    assert [report.change_line(c) for c in p.changes] == [
        "~ alias postmaster@example.com: owner@gmail.com -> me@gmail.com",
        "- alias sales@example.com (was bob@fastmail.com)",
        "+ alias support@example.com -> i@example.com",
        "~ alias team@example.com: resolution changed: bob@fastmail.com, i@example.com -> "
        "sales@example.com, i@example.com",
    ]
    assert p.changes[-1].action is Action.NONE
    assert p.changes[-1].why == WHY_DEPENDS
    assert (p.action, p.reasons) == (Action.RELOAD, (RELOAD_111,))


def test_an_alias_change_shows_who_else_now_receives_through_it() -> None:
    before = ALIASES + "all: team, postmaster\n"
    after = before.replace("sales: bob@fastmail.com", "sales: carol@fastmail.com")
    p = plan({ALIASES_PATH: after}, {ALIASES_PATH: before})
    assert rows(p) == [
        ("alias", "changed", "sales@example.com", "bob@fastmail.com", "carol@fastmail.com"),
        (
            "alias",
            "resolution changed",
            "all@example.com",
            "bob@fastmail.com, i@example.com, owner@gmail.com",
            "carol@fastmail.com, i@example.com, owner@gmail.com",
        ),
        (
            "alias",
            "resolution changed",
            "team@example.com",
            "bob@fastmail.com, i@example.com",
            "carol@fastmail.com, i@example.com",
        ),
    ]


def test_aliases_in_another_domain_that_point_here_are_shown() -> None:
    other = {"chasquid/domains/example.org/aliases": "postmaster: sales@example.com\n"}
    after = ALIASES.replace("bob@", "carol@")
    p = plan({**other, ALIASES_PATH: after}, other)
    assert rows(p)[-1] == (
        "alias",
        "resolution changed",
        "postmaster@example.org",
        "bob@fastmail.com",
        "carol@fastmail.com",
    )


def test_a_new_user_takes_mail_from_the_catch_all() -> None:
    before = ALIASES + "*: owner@gmail.com\nbilling: accounts\n"
    p = plan(
        {ALIASES_PATH: before, USERS: users(i=SCRYPT_1, accounts=SCRYPT_2)},
        {ALIASES_PATH: before},
    )
    assert rows(p) == [
        ("user", "added", "accounts@example.com", None, "scrypt"),
        (
            "alias",
            "resolution changed",
            "billing@example.com",
            "owner@gmail.com (catch-all)",
            "accounts@example.com",
        ),
    ]


def test_catch_all_added_changed_removed() -> None:
    added = plan({ALIASES_PATH: ALIASES + "*: owner@gmail.com\n"})
    assert rows(added) == [("catch-all", "added", "*@example.com", None, "owner@gmail.com")]
    assert report.change_line(added.changes[0]) == "+ catch-all *@example.com -> owner@gmail.com"
    with_catch_all = {ALIASES_PATH: ALIASES + "*: owner@gmail.com\n"}
    changed = plan({ALIASES_PATH: ALIASES + "*: me@gmail.com\n"}, with_catch_all)
    assert rows(changed) == [
        ("catch-all", "changed", "*@example.com", "owner@gmail.com", "me@gmail.com")
    ]
    removed = plan({}, with_catch_all)
    assert rows(removed) == [("catch-all", "removed", "*@example.com", "owner@gmail.com", None)]


def test_an_alias_added_over_a_catch_all_shows_where_its_mail_went() -> None:
    before = ALIASES + "*: owner@gmail.com\n"
    p = plan({ALIASES_PATH: before + "jobs: hr@example.net\n"}, {ALIASES_PATH: before})
    assert rows(p) == [
        ("alias", "added", "jobs@example.com", "owner@gmail.com (catch-all)", "hr@example.net")
    ]
    assert report.change_line(p.changes[0]) == (
        "+ alias jobs@example.com: owner@gmail.com (catch-all) -> hr@example.net"
    )


def test_pipes_and_errors_in_resolutions() -> None:
    after = ALIASES + "list: | /usr/bin/mlmmj-receive -L /var/list\nloop: loop\n"
    p = plan({ALIASES_PATH: after})
    assert rows(p) == [
        ("alias", "added", "list@example.com", None, "| /usr/bin/mlmmj-receive -L /var/list"),
        ("alias", "added", "loop@example.com", None, "(error: recursion limit exceeded)"),
    ]


# --- configuration ----------------------------------------------------------------------


def test_hostname_change_reminds_of_the_ptr_record() -> None:
    p = plan({"chasquid/chasquid.conf": 'hostname: "smtp.example.com"\n'})
    change, record = p.changes
    assert rows(Plan("a", "b", (record,), ())) == [
        ("record", "changed", "example.com MX", "10 mail.example.com.", "10 smtp.example.com.")
    ]
    assert change == Change(
        "hostname",
        "changed",
        "hostname",
        "mail.example.com",
        "smtp.example.com",
        Action.RESTART,
        WHY_CONFIG,
        "point the server's PTR (reverse DNS) record at smtp.example.com, and make sure a "
        "certificate covers it",
    )
    assert report.change_line(change) == "~ hostname: mail.example.com -> smtp.example.com"
    assert "PTR" in report.plan_text(p) and "PTR" in report.plan_markdown(p)


def test_listen_address_change() -> None:
    p = plan({"chasquid/chasquid.conf": CONF + 'smtp_address: ":25"\nsmtp_address: ":2525"\n'})
    assert rows(p) == [("listen", "changed", "smtp_address", "systemd", ":25, :2525")]
    assert (p.action, p.reasons) == (Action.RESTART, (WHY_CONFIG,))


def test_other_config_field() -> None:
    p = plan({"chasquid/chasquid.conf": CONF + "max_data_size_mb: 10\n"})
    assert rows(p) == [("config", "changed", "max_data_size_mb", "50", "10")]
    assert report.change_line(p.changes[0]) == "~ config max_data_size_mb: 50 -> 10"


def test_a_boolean_is_shown_as_chasquid_writes_it() -> None:
    p = plan({"chasquid/chasquid.conf": CONF + "dovecot_auth: true\n"})
    assert rows(p) == [("config", "changed", "dovecot_auth", "false", "true")]
    assert report.change_line(p.changes[0]) == "~ config dovecot_auth: false -> true"


def test_a_comment_in_the_config_is_no_change() -> None:
    assert plan({"chasquid/chasquid.conf": "# the name\n" + CONF}).changes == ()


def test_hooks_need_no_restart() -> None:
    hook = Entry(b"#!/bin/sh\n", MODE_EXEC)
    p = plan({"chasquid/hooks/post-data": hook})
    assert rows(p) == [("hook", "added", "chasquid/hooks/post-data", None, None)]
    assert (p.action, p.reasons) == (Action.NONE, (WHY_HOOKS,))
    changed = plan(
        {"chasquid/hooks/post-data": Entry(b"#!/bin/sh\nexit 0\n", MODE_EXEC)},
        {"chasquid/hooks/post-data": hook},
    )
    assert rows(changed) == [("hook", "changed", "chasquid/hooks/post-data", None, None)]
    assert report.plan_text(changed).endswith("chasquid: nothing to do\n")


def test_certificate_added_changed_removed() -> None:
    extra = "  - name: mx.example.com\n    certbot: /etc/letsencrypt/live/mx.example.com\n"
    m = MANIFEST.replace("domains:", extra + "domains:")
    p = plan({"gitops-mail.yaml": m.replace("mail.example.com_ecc", "mail.example.com")})
    assert rows(p) == [
        (
            "certificate",
            "changed",
            "mail.example.com",
            "acme_sh /root/.acme.sh/mail.example.com_ecc",
            "acme_sh /root/.acme.sh/mail.example.com",
        ),
        (
            "certificate",
            "added",
            "mx.example.com",
            None,
            "certbot /etc/letsencrypt/live/mx.example.com",
        ),
    ]
    assert (p.action, p.reasons) == (Action.RESTART, (WHY_CERTS,))
    files = "    files: {fullchain: /etc/ssl/a.pem, key: /etc/ssl/a.key}\n"
    m2 = MANIFEST.replace("    acme_sh: /root/.acme.sh/mail.example.com_ecc\n", files)
    assert rows(plan({}, {"gitops-mail.yaml": m2})) == [
        (
            "certificate",
            "changed",
            "mail.example.com",
            "files /etc/ssl/a.pem, /etc/ssl/a.key",
            "acme_sh /root/.acme.sh/mail.example.com_ecc",
        ),
    ]


def test_manifest_dns_and_settings_changes() -> None:
    m = (
        MANIFEST.replace("_spf.google.com]", "_spf.google.com, spf.example.net]").replace(
            "hooks: true", "hooks: true\n  pipe_aliases: true"
        )
        + "  example.org: {}\n"
    )
    p = plan({"gitops-mail.yaml": m, "chasquid/domains/example.org/aliases": "*: a@b.c\n"})
    records = [c for c in p.changes if c.area == "record"]
    assert rows(Plan("a", "b", tuple(records), ())) == [
        (
            "record",
            "changed",
            "example.com TXT",
            "v=spf1 mx include:_spf.google.com ~all",
            "v=spf1 mx include:_spf.google.com include:spf.example.net ~all",
        ),
        ("record", "added", "example.org MX", None, "10 mail.example.com."),
    ]
    others = [c for c in p.changes if c.area != "record"]
    assert [(c.area, c.op, c.subject, c.before, c.after, c.why) for c in others[-3:]] == [
        ("manifest", "changed", "chasquid.pipe_aliases", "false", "true", WHY_SETTINGS),
        (
            "manifest",
            "changed",
            "domains.example.com.spf.include",
            "_spf.google.com",
            "_spf.google.com, spf.example.net",
            WHY_DNS,
        ),
        ("manifest", "added", "domains.example.org", None, "{}", WHY_DNS),
    ]
    assert {c.action for c in p.changes[-3:]} == {Action.NONE}


SPF_LINE = "spf: {include: [_spf.google.com]}"
CHASQUID_LINES = 'version: "1.13"\n  hooks: true'


@pytest.mark.parametrize(
    ("written", "before", "after"),
    [
        (SPF_LINE, SPF_LINE, "spf: {include: [_spf.google.com], mx: true}"),
        (SPF_LINE, "spf: {include: [_spf.google.com], all: '~all'}", SPF_LINE),
        (CHASQUID_LINES, CHASQUID_LINES, CHASQUID_LINES + "\n  pipe_aliases: false"),
    ],
)
def test_a_default_written_out_or_left_out_is_no_change(
    written: str, before: str, after: str
) -> None:
    assert written in MANIFEST
    old, new = MANIFEST.replace(written, before), MANIFEST.replace(written, after)
    assert old != new
    assert plan({"gitops-mail.yaml": new}, {"gitops-mail.yaml": old}).changes == ()


def test_a_setting_set_to_other_than_its_default_is_a_change() -> None:
    p = plan({"gitops-mail.yaml": MANIFEST.replace("google.com]}", "google.com], mx: false}")})
    settings = [c for c in p.changes if c.area == "manifest"]
    assert rows(Plan("a", "b", tuple(settings), ())) == [
        ("manifest", "changed", "domains.example.com.spf.mx", "true", "false")
    ]


def test_other_files() -> None:
    p = plan({"README.md": "# mail\n", "chasquid/domains/example.com/dkim_selector": "s1\n"})
    assert [(c.area, c.op, c.subject, c.action, c.why) for c in p.changes] == [
        ("file", "added", "README.md", Action.NONE, "not part of chasquid's config"),
        (
            "file",
            "added",
            "chasquid/domains/example.com/dkim_selector",
            Action.NONE,
            "read by the post-data hook for every message",
        ),
    ]


# --- the action, per chasquid's reload behaviour ---------------------------------------


def test_users_of_a_domain_that_had_a_users_file_wait_for_the_reload() -> None:
    p = plan({USERS: users(i=SCRYPT_1, bob=SCRYPT_2)})
    assert (p.action, p.reasons) == (Action.RELOAD, (RELOAD_111,))
    assert report.plan_text(p).endswith(
        f"chasquid: reload users and aliases ({RELOAD_111}); a host with reload_strategy: "
        "restart (the default) restarts chasquid instead\n"
    )


def test_a_users_file_for_a_domain_that_had_none_needs_a_restart() -> None:
    p = plan({}, {USERS: None})
    assert rows(p)[0] == ("user", "added", "i@example.com", None, "scrypt")
    assert (p.action, p.reasons) == (Action.RESTART, (WHY_NEW_USERS,))


def test_a_users_file_that_did_not_load_needs_a_restart() -> None:
    p = plan({}, {USERS: b"users: {"})
    assert (p.action, p.reasons) == (Action.RESTART, (WHY_NEW_USERS,))


def test_a_removed_users_file_needs_a_restart() -> None:
    p = plan({USERS: None})
    assert rows(p)[0] == ("user", "removed", "i@example.com", None, None)
    assert (p.action, p.reasons) == (Action.RESTART, (WHY_GONE_USERS,))


def test_aliases_of_a_domain_without_users_file_wait_for_the_reload() -> None:
    p = plan({USERS: None, ALIASES_PATH: ALIASES + "x: y@z.com\n"}, {USERS: None})
    assert (p.action, p.reasons) == (Action.RELOAD, (RELOAD_111,))


def test_newer_chasquid_reloads_on_sighup() -> None:
    m = MANIFEST.replace('"1.13"', '"1.15"')
    p = plan(
        {"gitops-mail.yaml": m, ALIASES_PATH: ALIASES + "x: y@z.com\n"}, {"gitops-mail.yaml": m}
    )
    assert p.reasons == ("users and aliases are re-read on SIGHUP (chasquid >= 1.15)",)


def test_restart_wins_and_only_its_reasons_are_given() -> None:
    p = plan(
        {
            "chasquid/chasquid.conf": CONF + "max_data_size_mb: 10\n",
            ALIASES_PATH: ALIASES + "x: y@z.com\n",
            "chasquid/hooks/post-data": Entry(b"#!/bin/sh\n", MODE_EXEC),
            "chasquid/domains/example.org/aliases": "*: a@b.c\n",
        }
    )
    assert [c.action for c in p.changes] == [
        Action.RESTART,
        Action.RESTART,
        Action.RELOAD,
        Action.RESTART,
        Action.NONE,
    ]
    assert (p.action, p.reasons) == (Action.RESTART, (WHY_DOMAINS, WHY_CONFIG))
    assert report.plan_text(p).splitlines()[-1] == (
        f"chasquid: restart ({WHY_DOMAINS}; {WHY_CONFIG})"
    )


# --- from nothing ------------------------------------------------------------------------


def test_a_first_plan_starts_from_nothing() -> None:
    p = make_plan(None, state())
    assert p.base == "nothing"
    assert rows(p) == [
        ("domain", "added", "example.com", None, None),
        ("config", "added", "chasquid/chasquid.conf", None, None),
        ("user", "added", "i@example.com", None, "scrypt"),
        ("alias", "added", "postmaster@example.com", None, "owner@gmail.com"),
        ("alias", "added", "sales@example.com", None, "bob@fastmail.com"),
        ("alias", "added", "team@example.com", None, "bob@fastmail.com, i@example.com"),
        (
            "certificate",
            "added",
            "mail.example.com",
            None,
            "acme_sh /root/.acme.sh/mail.example.com_ecc",
        ),
        ("manifest", "added", "chasquid.hooks", None, "true"),
        ("manifest", "added", "chasquid.version", None, "1.13"),
        ("manifest", "added", "domains.example.com.spf.include", None, "_spf.google.com"),
        ("manifest", "added", "version", None, "1"),
        ("record", "added", "example.com MX", None, "10 mail.example.com."),
        ("record", "added", "example.com TXT", None, "v=spf1 mx include:_spf.google.com ~all"),
    ]
    assert (p.action, p.reasons) == (Action.RESTART, (WHY_DOMAINS, WHY_CONFIG, WHY_CERTS))
    _assert_no_secret(p)


def test_problems_of_the_new_revision_travel_with_the_plan() -> None:
    new = state({ALIASES_PATH: ALIASES + "broken\n"})
    p = make_plan(state({}, "a"), new, tuple(validate(new, policy=None)))
    assert p.has_errors
    assert [pr.code for pr in p.problems] == ["aliases.syntax"]
    assert json.loads(report.plan_json(p))["valid"] is False
