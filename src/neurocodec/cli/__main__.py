"""``python -m neurocodec.cli`` is the ``neurocodec`` command."""

from . import main

raise SystemExit(main())
