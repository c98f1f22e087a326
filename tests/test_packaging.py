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
