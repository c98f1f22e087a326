"""``python -m neurocodec.train`` is ``neurocodec train``."""

from ..cli import main

raise SystemExit(main(["train", *__import__("sys").argv[1:]]))
