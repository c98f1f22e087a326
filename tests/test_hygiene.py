"""Nothing committed carries a path of the machine it was written on.

Scans the repository's tracked text files for absolute paths under this machine's working
folders (the shared data folder is ../shared, runs are runs/NAME, a scratch folder WORKDIR).
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PREFIXES = ("work", "tmp", "root", "home")
# One of PREFIXES as the start of an absolute path: not inside a relative path or a URL
# (runs/work/x, http://host/home/x), and followed by a path character, so that a bare
# prefix in a string (as in tests/test_releases.py's check of built wheels) is not a path.
PATTERN = re.compile(r"(?<![\w.~/-])/(?:%s)/[\w.~-]" % "|".join(PREFIXES))

# Skipped: binary files (also detected by a NUL byte) and training logs, which record the
# run as it happened.
SKIP_SUFFIXES = {".jsonl", ".safetensors", ".hints", ".ncdc", ".png", ".npy", ".pt", ".jpg"}

# (path, matched text) pairs allowed to stay, each with its reason (none today).
ALLOWED: set[tuple[str, str]] = set()


def tracked_files():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (git or .git unavailable)")
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"git ls-files failed: {exc}")
    return [name for name in out.decode("utf-8", "surrogateescape").split("\0") if name]


def test_no_machine_local_absolute_paths():
    found = []
    for name in tracked_files():
        if Path(name).suffix.lower() in SKIP_SUFFIXES:
            continue
        path = ROOT / name
        if not path.is_file():          # deleted in the work tree, or a submodule
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        text = data.decode("utf-8", "replace")
        for number, line in enumerate(text.splitlines(), 1):
            for match in PATTERN.finditer(line):
                token = re.split(r"[\s`'\"),;\]]", line[match.start():])[0]
                if (name, token) in ALLOWED:
                    continue
                found.append(f"{name}:{number}: {token}")
    assert not found, "machine-local absolute paths in tracked files:\n" + "\n".join(found)


def test_pattern():
    assert PATTERN.search("see /" + "work/shared/data/kodak")
    assert PATTERN.search("'/" + "tmp/det/zoo'")
    assert PATTERN.search("cd /" + "root/x")
    assert PATTERN.search("/" + "home/user/x")
    assert not PATTERN.search('"/' + 'tmp/" not in text')
    assert not PATTERN.search("runs/" + "work/x and ../shared/data")
    assert not PATTERN.search("https://example.com/" + "home/page")
