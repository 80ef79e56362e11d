"""PostgreSQL's binary COPY format, the little of it the telemetry reads need: one row whose
columns are arrays of fixed-width values, cut into numpy arrays without a Python object per
value (``COPY (SELECT array_agg(...), ...) TO STDOUT (FORMAT BINARY)``)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np


def copy_binary_arrays(data: bytes, elements: Sequence[str]) -> list[np.ndarray]:
    """The one-dimensional arrays of the single row of a binary COPY whose columns are arrays of
    fixed-width, non-null ``elements`` (numpy dtype strings). A NULL column (array_agg of no
    rows) is an empty array."""
    if data[:11] != b"PGCOPY\n\xff\r\n\x00":
        raise RuntimeError("not a PostgreSQL binary COPY stream")
    (extension,) = struct.unpack_from(">i", data, 15)
    offset = 19 + extension
    (fields,) = struct.unpack_from(">h", data, offset)
    if fields != len(elements):
        raise RuntimeError(f"binary COPY row has {fields} columns, expected {len(elements)}")
    offset += 2
    out = []
    for element in elements:
        (size,) = struct.unpack_from(">i", data, offset)
        offset += 4
        if size == -1:
            out.append(np.empty(0, dtype=element))
            continue
        ndim, has_null, _oid = struct.unpack_from(">iiI", data, offset)
        if ndim == 0:
            out.append(np.empty(0, dtype=element))
        elif ndim != 1 or has_null:
            raise RuntimeError(f"expected a one-dimensional array without NULLs, got ndim={ndim} has_null={has_null}")
        else:
            (count,) = struct.unpack_from(">i", data, offset + 12)
            cells = np.frombuffer(data, dtype=np.dtype([("size", ">i4"), ("value", element)]), count=count, offset=offset + 20)
            if count and not (cells["size"] == np.dtype(element).itemsize).all():
                raise RuntimeError("binary COPY array element of an unexpected width")
            out.append(cells["value"])
        offset += size
    return out
