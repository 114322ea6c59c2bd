"""The DNS records a change makes you publish, and in which order (pure).

Both revisions' zones are rendered as ``dns/<domain>.zone`` would be, with
the DKIM keys their committed zones publish (a key the new revision's zone
holds wins), and compared record set by record set: a PR that sets DMARC to
``p=reject`` shows the ``_dmarc`` TXT before and after; one that adds a
selector shows its record, pending until the server makes the key. Rotation
gets its order in the notes: publish the new selector, then remove the old
one.
"""

from __future__ import annotations

from collections.abc import Iterator

from gitops_mail.core.dns.dkim import DOMAINKEY, Keys
from gitops_mail.core.dns.zone import Record, committed_keys, zone_path, zone_records
from gitops_mail.core.plan.model import WHY_DNS, Action, Change
from gitops_mail.core.state import State

PENDING = "(the key the server makes when this revision is applied)"
SHOWN_KEY = 16  # characters of p= shown; the rest is elided

RecordSets = dict[tuple[str, str], list[Record]]  # (name, type) -> records


def record_changes(base: State, new: State) -> Iterator[Change]:
    keys = {**committed_keys(base), **committed_keys(new)}
    old, cur = _sets(base, keys), _sets(new, keys)
    for key in sorted(old.keys() | cur.keys()):
        before, after = _shown(old.get(key)), _shown(cur.get(key))
        if before == after:
            continue
        op = "added" if before is None else "removed" if after is None else "changed"
        note = _note(key, op, old, cur)
        subject = f"{key[0]} {key[1]}"
        yield Change("record", op, subject, before, after, Action.NONE, WHY_DNS, note)


def _sets(state: State, keys: Keys) -> RecordSets:
    sets: RecordSets = {}
    for records in zone_records(state, keys).values():
        for record in records:
            sets.setdefault((record.name, record.rtype), []).append(record)
    return sets


def _shown(records: list[Record] | None) -> str | None:
    if not records:
        return None
    return ", ".join(sorted(_value(r) for r in records))


def _value(record: Record) -> str:
    if record.value is None:
        return PENDING
    head, found, key = record.value.partition("; p=")
    if not found or DOMAINKEY not in record.owner or len(key) <= SHOWN_KEY:
        return record.value
    return f"{head}; p={key[:SHOWN_KEY]}… ({len(key)} characters)"


def _note(key: tuple[str, str], op: str, old: RecordSets, cur: RecordSets) -> str:
    name = key[0]
    if f".{DOMAINKEY}." not in name or op == "changed":
        return ""
    origin = name.split(f".{DOMAINKEY}.", 1)[1]
    if op == "removed":
        return (
            f"keep {name} in DNS a few days more (mail already sent is checked against it), "
            "then delete it"
        )
    kept = sorted(n for n in _selectors(old, origin) & _selectors(cur, origin))
    pending = cur[key][0].value is None
    where = f"the daemon commits its record to {zone_path(origin)}" if pending else "see above"
    if not kept:
        return f"publish {name} TXT ({where})"
    return f"publish {name} TXT ({where}), then remove {', '.join(kept)} from dkim.selectors"


def _selectors(sets: RecordSets, origin: str) -> set[str]:
    suffix = f".{DOMAINKEY}.{origin}"
    return {name.removesuffix(suffix) for name, _ in sets if name.endswith(suffix)}
