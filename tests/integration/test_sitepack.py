"""The venv's site-packages installed and compiled here once (host/remote/sitepack.py)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from gitops_mail.host.remote import sitepack

WHEEL = "tinypkg-1.0-py3-none-any.whl"


def tiny_wheel(where: Path) -> Path:
    """A real wheel (pip installs it) holding one module."""
    path = where / WHEEL
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("tinypkg/__init__.py", "ANSWER = 42\n")
        info = "tinypkg-1.0.dist-info"
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n")
        wheel.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(
            f"{info}/RECORD",
            f"tinypkg/__init__.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n",
        )
    return path


def test_the_archive_holds_the_installed_packages_with_checked_hash_bytecode(
    tmp_path: Path,
) -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    out = tmp_path / "out"
    out.mkdir()

    name = sitepack.build(out, [tiny_wheel(tmp_path)], version, "k1")

    assert name == "site-k1.tar.gz"
    site = tmp_path / "site"
    with tarfile.open(out / name) as archive:
        members = {m.name: m for m in archive.getmembers()}
        archive.extractall(site, filter="data")
    assert "./tinypkg-1.0.dist-info/METADATA" in members
    pyc = next((site / "tinypkg" / "__pycache__").glob("__init__.*.pyc"))
    assert members[f"./{pyc.relative_to(site)}"].uid == 0
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b11  # PEP 552: hash-based, and checked against the source
    assert f"/opt/gitops-mail/venv/lib/python{version}/site-packages".encode() in pyc.read_bytes()
    # a changed source is never served from the old bytecode, whatever the file times
    (site / "tinypkg" / "__init__.py").write_text("ANSWER = 7\n")
    done = subprocess.run(
        [sys.executable, "-c", "import tinypkg; print(tinypkg.ANSWER)"],
        cwd=site,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.stdout.strip() == "7"


def test_the_console_script_runs_the_entry_point_with_the_venv_python() -> None:
    text = sitepack.script("/opt/gitops-mail/venv/bin/python")
    assert text.splitlines() == [
        "#!/opt/gitops-mail/venv/bin/python",
        "import sys",
        "from gitops_mail.cli.main import console_main",
        "if __name__ == '__main__':",
        "    sys.exit(console_main())",
    ]
