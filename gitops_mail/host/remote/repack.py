"""Wheels of the distributions installed here: gitops-mail's dependencies as this
machine runs them, for a host with the same Python and machine, with no index at all.

Each installed distribution's files (its ``RECORD``, less bytecode, the files
pip makes at install time and anything outside site-packages such as console
scripts, which pip writes again from ``entry_points.txt``) are zipped as the
wheel it came from, named with the first tag of its ``WHEEL`` file, with a new
``RECORD``. The versions are exactly the ones tested here.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import re
import zipfile
from pathlib import Path

from gitops_mail.errors import GitopsMailError

_SKIP = ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?")


class RepackError(GitopsMailError):
    """An installed distribution cannot be made into a wheel again."""


def closure(project: str) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``project`` needs, transitively (extras left out)."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = _needs(project)
    while todo:
        name = todo.pop()
        key = _key(name)
        if key in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python: not installed here
        seen[key] = dist
        todo += _needs(name)
    return sorted(seen.values(), key=lambda d: _key(d.metadata["Name"]))


def _needs(name: str) -> list[str]:
    found = []
    for requirement in importlib.metadata.requires(name) or []:
        if "extra ==" in requirement.replace('extra=="', 'extra == "'):
            continue
        match = _NAME.match(requirement)
        if match:
            found.append(match.group(1))
    return found


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def repack(dist: importlib.metadata.Distribution, out: Path) -> Path:
    """``dist`` as a wheel in ``out``; its path."""
    name, version = dist.metadata["Name"], dist.version
    wheel_info = dist.read_text("WHEEL") or ""
    tags = [
        line.split(":", 1)[1].strip() for line in wheel_info.splitlines() if line.startswith("Tag:")
    ]
    if not tags or dist.files is None:
        raise RepackError(
            f"{name} {version} is installed without its WHEEL tags or RECORD: it cannot be "
            "made into a wheel again",
            "reinstall it with pip, or build the wheels with pip wheel",
        )
    target = out / f"{re.sub(r'[-.]+', '_', name)}-{version}-{_tag_set(tags)}.whl"
    info = f"{re.sub(r'[-.]+', '_', name)}-{version}.dist-info"
    records = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as wheel:
        for path in dist.files:
            text = str(path)
            if not _keep(text):
                continue
            data = Path(str(dist.locate_file(path))).read_bytes()
            arcname = _dist_info(text, info)
            wheel.writestr(arcname, data)
            records.append(f"{arcname},sha256={_digest(data)},{len(data)}")
        records.append(f"{info}/RECORD,,")
        wheel.writestr(f"{info}/RECORD", "\n".join(records) + "\n")
    return target


def _tag_set(tags: list[str]) -> str:
    """The file name's compressed tag set (``py2.py3-none-any``) for the ``Tag:`` lines."""
    parts = [tag.split("-") for tag in tags]
    return "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))


def _keep(path: str) -> bool:
    parts = path.split("/")
    if ".." in parts or "__pycache__" in parts or path.endswith(".pyc"):
        return False
    return not (parts[0].endswith(".dist-info") and parts[-1] in _SKIP)


def _dist_info(path: str, info: str) -> str:
    """The path in the wheel: the dist-info directory under the name the wheel's file has."""
    first, _, rest = path.partition("/")
    return f"{info}/{rest}" if first.endswith(".dist-info") else path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
