"""Packaging hygiene (issue 20): `python -m neurocodec`, the licence file, py.typed."""

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "neurocodec", "--version"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("neurocodec ")


def test_license_file_matches_declared_licence():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["metadata"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0" in text


def test_package_is_typed_and_ships_the_marker():
    assert (ROOT / "src" / "neurocodec" / "py.typed").is_file()
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert "py.typed" in cfg["options.package_data"]["neurocodec"]


def test_venv_folders_are_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".venv/" in ignored


def test_every_data_file_of_the_package_is_in_the_wheel():
    """Each non-Python file under src/neurocodec (weights, hints, the release table) is matched
    by a package_data pattern of setup.cfg: an editable install would hide a missing one."""
    from setuptools.config.setupcfg import read_configuration

    package_data = read_configuration(str(ROOT / "setup.cfg"))["options"]["package_data"]
    src = ROOT / "src"
    matched = set()
    for package, patterns in package_data.items():
        base = src / package.replace(".", "/")
        for pattern in patterns:
            assert "," not in pattern, f"setup.cfg: {pattern!r} (one pattern a line)"
            matched |= set(base.glob(pattern))
    data = {p for p in (src / "neurocodec").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    assert data, "no data files found"
    assert sorted(map(str, data - matched)) == []
