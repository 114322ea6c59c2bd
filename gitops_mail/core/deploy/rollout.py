"""``deploy --status``: how far a rollout got on each host, as lines (pure).

Each host's daemon reconciles the same branch on its own; a push that
reached mx1 may not have reached mx2 yet (not pushed there, applying, or
refused by that host). One ``Rollout`` per host says what its daemon made
live and whether that holds the conf repo's tip; ``lines`` lays them out with
a verdict, so the host that lags is named.
"""

from __future__ import annotations

from dataclasses import dataclass

REACHED = "live"  # the live revision is the tip, or a commit after it (commit-back)
BEHIND = "behind"
UNKNOWN = "unknown"


@dataclass
class Rollout:
    name: str
    live: str = ""  # the revision the host's daemon made live ("" when none)
    host_tip: str = ""  # the tip of the watched branch on the host
    has_tip: bool = False  # the host's branch holds the conf repo's tip
    reached: bool = False  # the live revision holds the conf repo's tip
    daemon: str = UNKNOWN  # the service manager's word for gitops-mail.service
    last: str = ""  # the last attempt: "applied 1a2b3c4", "invalid 5d6e7f8: why"
    error: str = ""  # why the host could not be asked

    @property
    def state(self) -> str:
        if self.error:
            return UNKNOWN
        return REACHED if self.reached else BEHIND


def lines(tip: str, branch: str, hosts: list[Rollout]) -> list[str]:
    """A row per host, then which hosts the tip reached and which it did not."""
    width = max(len("host"), *(len(h.name) for h in hosts))
    out = [f"conf repo {branch} at {tip[:7]}", f"{'host':<{width}}  state   live     daemon"]
    for host in hosts:
        live = host.live[:7] or "none"
        out.append(f"{host.name:<{width}}  {host.state:<7} {live:<8} {host.daemon}")
        out += [f"{' ' * width}  {note}" for note in _notes(host, branch)]
    reached = [h.name for h in hosts if h.state == REACHED]
    lagging = [h.name for h in hosts if h.state != REACHED]
    if not lagging:
        out.append(f"{tip[:7]} is live on every host ({', '.join(reached)})")
    else:
        where = f"live on {', '.join(reached)}; " if reached else ""
        out.append(f"{tip[:7]} is {where}not yet on {', '.join(lagging)}")
    return out


def _notes(host: Rollout, branch: str) -> list[str]:
    if host.error:
        return [f"cannot ask: {host.error}"]
    notes = []
    if not host.has_tip:
        notes.append(f"its {branch} lacks the tip: push to it (git push vps-{host.name} {branch})")
    elif not host.reached:
        notes.append(f"has the tip at {host.host_tip[:7]}, not live yet")
    if host.last:
        notes.append(f"last attempt: {host.last}")
    return notes
