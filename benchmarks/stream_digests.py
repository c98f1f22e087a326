"""Byte-identity check for refactors: SHA-256 of every stream the shipped models write for
the 24 Kodak images at qualities 1, 4 and 8 (and of each decoded image).

    python benchmarks/stream_digests.py record OUT.json [--kodak DIR]
    python benchmarks/stream_digests.py check  REF.json [--kodak DIR]

`check` re-encodes and exits 1 listing every stream or reconstruction whose digest moved.
The reference recorded before issue 17's refactor is tests/golden/kodak_stream_digests.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

QUALITIES = (1, 4, 8)
DEFAULT_KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kodak"


def digests(kodak: Path, model: str | None) -> dict[str, dict[str, str]]:
    from PIL import Image

    from neurocodec import Codec

    codec = Codec(model)
    out: dict[str, dict[str, str]] = {}
    for path in sorted(kodak.glob("*.png")):
        image = np.asarray(Image.open(path).convert("RGB"))
        for q in QUALITIES:
            data = codec.compress(image, quality=q)
            pixels = codec.decompress(data)
            out[f"{path.stem}@q{q}"] = {"stream": hashlib.sha256(data).hexdigest(),
                                       "pixels": hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()}
        print(path.stem, file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["record", "check"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--kodak", type=Path, default=DEFAULT_KODAK)
    parser.add_argument("--model", default=None, help="model name (default: the default model)")
    args = parser.parse_args(argv)
    found = digests(args.kodak, args.model)
    if args.mode == "record":
        args.file.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(found)} streams in {args.file}")
        return 0
    reference = json.loads(args.file.read_text())
    moved = sorted(k for k in reference if found.get(k) != reference[k])
    for key in moved:
        print(f"moved: {key}")
    print(f"{len(reference) - len(moved)} of {len(reference)} streams and reconstructions byte-identical")
    return 1 if moved else 0


if __name__ == "__main__":
    raise SystemExit(main())
