"""Our alias resolution against chasquid's own: ``chasquid-util aliases-resolve``.

chasquid-util (1.11) resolves with every user existing, so it never reaches a
catch-all: cases where our resolution uses one are left out here (the unit
tests cover them from chasquid's source). It also does not normalise the
address it is given, so every domain below is written in lower case.
"""

from __future__ import annotations

import itertools
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.tools import needs

from gitops_mail.core.formats.aliases.parse import (
    MAX_LINE_BYTES,
    DomainAliases,
    Resolver,
    parse_aliases,
)

UTIL = Path("/usr/bin/chasquid-util")
pytestmark = [
    pytest.mark.chasquid,
    needs(str(UTIL)),
]


def chain(prefix: str, length: int, end: str = "end@remote.test") -> str:
    names = [f"{prefix}-{i}" for i in range(length)]
    lines = [f"{a}: {b}" for a, b in itertools.pairwise(names)]
    return "\n".join([*lines, f"{names[-1]}: {end}"]) + "\n"


CORPUS: dict[str, str | None] = {
    "lists.test": "# lists, duplicates, upper case, comments, blank lines\n"
    "team: alice, Bob, carol@remote.test\n   # indented comment\n\n"
    "Dup: first@remote.test\ndup: second@remote.test\r\nUPPER: ALICE\n"
    "both: alice, alice, bob\ntrailing: alice,\nempty: ,\nalice-fwd: alice@remote.test\n",
    "pipes.test": "run: | /bin/cat -n\nbare:|/bin/true\nmixed: run, x@remote.test, bare\n",
    "chains.test": chain("c9", 9) + chain("c10", 10) + chain("c11", 11) + chain("p", 10, "|/x"),
    "loops.test": "self: self\nping: pong\npong: ping@loops.test\nme: me, me@remote.test\n"
    "into: ok@remote.test, ping\nacross: x@cross.test\n",
    "cross.test": "x: Y.Y+z@lists.test\ny: across@loops.test\n",
    "drops.test": "first.last: x@remote.test\nab: ab@remote.test\na+b: s@remote.test\n"
    "fwd: us.er, user+tag, Us.Er+Tag@drops.test\nremote-dots: x.y+z@remote.test\n",
    "ghosts.test": "ghost: nobody\nghost2: nobody@lists.test, no.body+x@lists.test\n",
    "malformed.test": "no colon here\na@b: c@remote.test\n: x@remote.test\ny:\n"
    "bad name: x@remote.test\nok: fine@remote.test\nz: |\nok2: fine, ,\n",
    "unicode.test": "ñoño: x@remote.test\nÑANDÚ: ñoño\npérez: Ñandú, ZOË@remote.test\n",
    "nofile.test": None,
    "catchall.test": "*: alice@lists.test\nk: known@remote.test\n",
    "dups.test": "x: one@remote.test\nX: two@remote.test\nx.y: three@remote.test\nx: ,\n",
    "star.test": "s: *@catchall.test, *@remote.test\n",
}
USERS = {"lists.test": ["alice", "bob"], "drops.test": ["user"], "nofile.test": ["u"]}
EXTRA = [
    "x@remote.test",
    "x.y+z@remote.test",
    "*@catchall.test",
    "UPPER+x@lists.test",
    "t.e.a.m@lists.test",
    "team+anything@lists.test",
    "first.last@drops.test",
    "firstlast@drops.test",
    "a+b@drops.test",
    "a.b+c@drops.test",
    "no.body+x@ghosts.test",
    "ñoño+x@unicode.test",
    "Ñ.O.Ñ.O@unicode.test",
]


def util(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(UTIL), f"-C={conf}", *args], capture_output=True, text=True, timeout=60, check=False
    )


def write_conf(root: Path, files: Mapping[str, str | None], conf_text: str = "") -> None:
    (root / "chasquid.conf").write_text(conf_text)
    for domain, text in files.items():
        (root / "domains" / domain).mkdir(parents=True)
        if text is not None:
            (root / "domains" / domain / "aliases").write_text(text)


def our_resolver(root: Path, users: Mapping[str, Iterable[str]] = {}, **options: str) -> Resolver:
    domains = {}
    for directory in sorted((root / "domains").iterdir()):
        file = directory / "aliases"
        data = file.read_bytes() if file.exists() else b""
        parsed = parse_aliases(data, str(file), directory.name)
        domains[directory.name] = DomainAliases(
            frozenset(users.get(directory.name, ())), parsed.effective()
        )
    return Resolver(domains, **options)


def theirs(conf: Path, address: str) -> tuple[list[tuple[str, str]], str | None]:
    """chasquid-util's recipients as (kind, address) pairs, or its error."""
    done = util(conf, "aliases-resolve", address)
    lines = done.stdout.splitlines()
    if done.returncode != 0:
        assert lines[-1].startswith("Error resolving: "), done.stdout + done.stderr
        return [], lines[-1].removeprefix("Error resolving: ")
    found = []
    for line in lines:
        if line.startswith(("(email)  ", "(pipe)  ")):
            kind, _, rest = line.partition("  ")
            found.append((kind.strip("()"), rest))
    return found, None


def ours(resolver: Resolver, address: str) -> tuple[list[tuple[str, str]], str | None] | None:
    """Our resolution in chasquid-util's terms; None where it cannot compare."""
    found = resolver.resolve(address)
    if found.catch_all or found.error == "destination address is invalid":
        return None
    return [(r.kind.value, r.address) for r in found.recipients], found.error


def compare(conf: Path, resolver: Resolver, addresses: Iterable[str]) -> int:
    wanted = {a: ours(resolver, a) for a in sorted(set(addresses))}
    wanted = {a: result for a, result in wanted.items() if result is not None}
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = dict(zip(wanted, pool.map(lambda a: theirs(conf, a), wanted), strict=True))
    assert {a: got[a] for a in wanted} == wanted
    return len(wanted)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("conf")
    write_conf(root, CORPUS)
    for domain, names in USERS.items():
        for name in names:
            done = util(root, "user-add", f"{name}@{domain}", "--password=secret")
            assert done.returncode == 0, done.stdout + done.stderr
    return root


def addresses_of(resolver: Resolver, root: Path) -> list[str]:
    found = list(EXTRA)
    for directory in (root / "domains").iterdir():
        domain = directory.name
        names = {*resolver.aliases(domain), "nobody", "No.Body+x"}
        for name in names:
            found += [f"{name}@{domain}", f"{name.upper()}+tag@{domain}"]
    return found


def test_resolution_agrees_with_chasquid_util(corpus: Path) -> None:
    resolver = our_resolver(corpus, USERS)
    compared = compare(corpus, resolver, addresses_of(resolver, corpus))
    assert compared > 100


def test_corpus_covers_the_interesting_cases(corpus: Path) -> None:
    resolver = our_resolver(corpus, USERS)
    assert theirs(corpus, "c9-0@chains.test") == ([("email", "end@remote.test")], None)
    for address in ("c10-0@chains.test", "c11-0@chains.test", "self@loops.test", "me@loops.test"):
        assert theirs(corpus, address) == ([], "recursion limit exceeded")
        assert resolver.resolve(address).error == "recursion limit exceeded"
    assert theirs(corpus, "p-0@chains.test") == ([("pipe", "/x")], None)
    assert theirs(corpus, "first.last@drops.test") == ([("email", "firstlast@drops.test")], None)
    assert theirs(corpus, "both@lists.test")[0] == [("email", "alice@lists.test")] * 2 + [
        ("email", "bob@lists.test")
    ]
    assert resolver.resolve("zz@catchall.test").catch_all


def test_chasquid_util_refuses_exactly_the_files_we_refuse(tmp_path: Path) -> None:
    files = {
        "long.test": "a: b@remote.test\nc: " + "x" * (MAX_LINE_BYTES - 2) + "\n",
        "fits.test": "a: b@remote.test\nc: " + "x" * (MAX_LINE_BYTES - 3) + "\n",
        "crlf.test": "a: b@remote.test\nc: " + "x" * (MAX_LINE_BYTES - 3) + "\r\n",
        "last.test": "a: b@remote.test\nc: " + "x" * (MAX_LINE_BYTES - 2),
    }
    write_conf(tmp_path, files)
    done = util(tmp_path, "aliases-resolve", "x@remote.test")
    refused = {line.split(":")[0] for line in done.stdout.splitlines() if "error loading" in line}
    ours_refused = {
        domain
        for domain, text in files.items()
        if parse_aliases(text.encode(), "", domain).aliases == ()
    }
    assert refused == ours_refused == {"long.test", "crlf.test", "last.test"}
    resolver = our_resolver(tmp_path)
    assert compare(tmp_path, resolver, [f"a@{domain}" for domain in files]) == 4


def test_custom_drop_characters_and_suffix_separators(tmp_path: Path) -> None:
    files = {
        "def": "abc: x@y\nñoño: x@y\nrecu: ab+cd@p-q.com\nremo: x-@y-z.com\nfi.rst: z@y\n",
        "p-q.com": "ab: a.b-c@def\n",
    }
    write_conf(tmp_path, files, 'drop_characters: ".~"\nsuffix_separators: "-+"\n')
    resolver = our_resolver(tmp_path, drop_characters=".~", suffix_separators="-+")
    users = ["abc", "a.b.c", "a~b~c", "a.b~c", "abc-ñaca", "abc+xyz", "abc-x.y+z", "ñ.o~ño-ñaca"]
    more = ["a.bc-ñaca@p-q.com", "recu+blah@def", "xy@z.com", "x.y@z.com", "fi.rst@def"]
    more += ["first@def", "remo-x@def", "ab~~@p-q.com"]
    assert compare(tmp_path, resolver, [*(f"{u}@def" for u in users), *more]) == 16


NAMES = ["a", "b", "c", "*", "a.b", "a+b", "u"]
TARGETS = [*NAMES, "u+x", "U", "a@e.test", "z@remote.test", "| /bin/x", "*@e.test", "B.+y"]
ALIAS_LINE = st.tuples(st.sampled_from(NAMES), st.lists(st.sampled_from(TARGETS), max_size=3))
ALIAS_FILE = st.lists(ALIAS_LINE, max_size=8).map(
    lambda lines: "".join(f"{name}: {', '.join(t)}\n" for name, t in lines)
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ALIAS_FILE, ALIAS_FILE)
def test_fuzz_random_alias_graphs_agree_with_chasquid_util(first: str, second: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        write_conf(root, {"d.test": first, "e.test": second})
        resolver = our_resolver(root)
        names = [n for n in NAMES if n != "*"]
        compare(root, resolver, [f"{n}@{d}" for n in names for d in ("d.test", "e.test")])
