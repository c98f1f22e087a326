"""One rule for every decoder of the coding layer: corrupt coded data raises FormatError.

constriction raises AssertionError (and may panic) on data no encoder wrote; our own
decoders may index out of range. Inside :func:`corrupt_data_is_format_error` any such
exception becomes ``FormatError("corrupt coded data: ...")``, a FormatError passes as it is,
and :data:`PASSTHROUGH` (interrupts, exits, out of memory) is never converted.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..errors import FormatError

#: Exceptions never converted into FormatError while decoding.
PASSTHROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError)


@contextmanager
def corrupt_data_is_format_error() -> Iterator[None]:
    try:
        yield
    except (FormatError, *PASSTHROUGH):
        raise
    except BaseException as exc:
        raise FormatError(f"corrupt coded data: {exc}") from exc
