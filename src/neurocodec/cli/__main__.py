"""``python -m neurocodec.cli`` is the ``neurocodec`` command."""

from . import main

# The guard matters: the local engine of encode-dir starts its workers with "spawn",
# which imports the main module again in every worker.
if __name__ == "__main__":
    raise SystemExit(main())
