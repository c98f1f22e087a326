"""``python -m neurocodec``: the same command line as ``neurocodec``."""

from neurocodec.cli import main

raise SystemExit(main())
