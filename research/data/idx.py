"""IDX files (the MNIST format): a validating reader and a writer.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number
of dimensions), one big-endian uint32 per dimension, then the values, big-endian,
in C order. Files may be gzip-compressed; compression is detected from the
content (magic bytes 1f 8b), never from the file name, because mirrors and users
rename files freely.

Every malformed file raises ValueError naming the file and what is wrong, so a
half-downloaded or corrupted file never turns into silently wrong data.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

# dtype code -> big-endian dtype, as the IDX format defines them.
_CODE_TO_DTYPE = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path) -> np.ndarray:
    """Reads an IDX file (raw or gzip) into a native-endian array of its shape.

    Raises ValueError naming the file for a bad magic number, an unknown dtype,
    zero dimensions, a truncated or over-long payload, or a corrupt gzip stream;
    FileNotFoundError when it does not exist.
    """
    return parse_idx(read_idx_bytes(path), path)


def read_idx_bytes(path) -> bytes:
    """Returns the file's content, decompressed when it starts with the gzip magic.

    This is the byte string that MNIST's published SHA-256 sums are computed on,
    so callers can verify a file whatever compression it came in.
    """
    with open(path, "rb") as f:
        return maybe_gunzip(f.read(), path)


def maybe_gunzip(data: bytes, source="<bytes>") -> bytes:
    """Returns `data` decompressed when it starts with the gzip magic, else unchanged.

    A corrupt or cut-off gzip stream raises ValueError naming `source`.
    """
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{source}: corrupt gzip stream ({e}); delete the file and fetch it again.") from None


def parse_idx(data: bytes, source="<bytes>") -> np.ndarray:
    """Decodes the (decompressed) bytes of an IDX file; `source` names it in errors.

    The result is native-endian. For uint8/int8 data it is a read-only view of
    `data` (no copy of what may be tens of megabytes); other dtypes are copied
    once to swap the byte order.
    """
    dtype, dims = _parse_header(data, source)
    offset = 4 + 4 * len(dims)
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(data) - offset
    if found < expected:
        raise ValueError(f"{source}: truncated: expected {expected} bytes of data, found {found}.")
    if found > expected:
        raise ValueError(
            f"{source}: trailing garbage: expected {expected} bytes of data, found {found} ({found - expected} extra)."
        )
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=offset)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array.reshape(dims)


def _parse_header(data: bytes, source) -> tuple[np.dtype, tuple[int, ...]]:
    """Returns (big-endian dtype, dims) from the header, validating both."""
    if len(data) < 4:
        raise ValueError(f"{source}: truncated: {len(data)} bytes, too short for the 4-byte IDX magic number.")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{source}: bad magic number {data[:4].hex()}: an IDX file starts with two zero bytes "
            "(is it an IDX file, or gzip data with a damaged header?)."
        )
    code, ndim = data[2], data[3]
    if code not in _CODE_TO_DTYPE:
        valid = ", ".join(f"0x{c:02X}" for c in _CODE_TO_DTYPE)
        raise ValueError(
            f"{source}: bad magic number {data[:4].hex()}: unknown dtype code 0x{code:02X} (valid: {valid})."
        )
    if ndim < 1:
        raise ValueError(f"{source}: bad magic number {data[:4].hex()}: the number of dimensions is 0, must be >= 1.")
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{source}: truncated: the header declares {ndim} dimensions but the file ends inside it.")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return _CODE_TO_DTYPE[code], dims


def write_idx(path, array) -> None:
    """Writes `array` as an IDX file, gzip-compressed when `path` ends with ".gz".

    Supported dtypes: uint8, int8, int16, int32, float32, float64 (the ones IDX
    defines); anything else raises ValueError rather than being silently cast.
    The file is written to a temporary name and renamed, so a crash never leaves
    a partial file under `path`.
    """
    array = np.asarray(array)
    code = _dtype_code(array.dtype, path)
    if array.ndim < 1 or array.ndim > 255:
        raise ValueError(f"{path}: IDX needs 1 to 255 dimensions, got an array of shape {array.shape}.")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"{path}: every dimension must be < 2**32, got shape {array.shape}.")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + np.ascontiguousarray(array, dtype=_CODE_TO_DTYPE[code]).tobytes()
    if str(path).endswith(".gz"):
        # mtime=0: the same array always gives the same bytes (and checksum).
        data = gzip.compress(data, mtime=0)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _dtype_code(dtype: np.dtype, path) -> int:
    """The IDX code of `dtype` (any byte order), or ValueError listing the valid ones."""
    for code, idx_dtype in _CODE_TO_DTYPE.items():
        if dtype.kind == idx_dtype.kind and dtype.itemsize == idx_dtype.itemsize:
            return code
    valid = ", ".join(d.newbyteorder("=").name for d in _CODE_TO_DTYPE.values())
    raise ValueError(f"{path}: IDX cannot store dtype {dtype}; convert to one of {valid}.")
