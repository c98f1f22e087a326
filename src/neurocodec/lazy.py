"""Lazy package attributes: names whose modules load on first use, so that importing a
package stays light (no numpy, scipy or constriction until they are needed)."""

from __future__ import annotations

import importlib
import sys
from typing import Callable


def lazy_attributes(package: str, table: dict[str, str]) -> Callable[[str], object]:
    """A module-level ``__getattr__`` for ``package``: ``name`` in ``table`` is imported from
    the submodule ``package.<table[name]>`` on first access and kept in the package's namespace."""

    def __getattr__(name: str):
        if name in table:
            value = getattr(importlib.import_module(f".{table[name]}", package), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
