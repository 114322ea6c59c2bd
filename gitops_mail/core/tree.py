"""The files gitops-mail wants in chasquid's config dir: a value, not an action.

``render`` makes a ``DesiredTree``; ``host.livefs`` compares it with the live
directory and carries it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FileSpec:
    data: bytes = field(repr=False)  # users files and private keys: never in a repr
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"


DesiredTree = Mapping[str, FileSpec]  # relative POSIX paths under the config dir
