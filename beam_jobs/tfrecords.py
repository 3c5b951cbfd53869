"""Vectorised tf.train.Example encoding and GZIP TFRecord framing.

Serialising tens of millions of examples one `tf.train.Example` at a time costs a
Python call per record. The examples here have a fixed schema, so this module
builds their protobuf bytes for a whole block of rows at once with numpy:
records are grouped by their *layout* (the byte lengths of the book id and of
the three varints); inside a group every record has the same length and field
positions, so the group is one [n, length] byte matrix filled column-slice by
column-slice. The TFRecord CRC32C of each record is computed for the whole
matrix at once from per-position lookup tables (CRC is linear over GF(2) for a
fixed length). No Python call is made per record.

The bytes are standard protobuf wire format, so `tf.io.parse_example` (or
`tf.train.Example.FromString`) reads them like any other Example. Records are
written grouped by layout, in input order inside a group: the file content is a
pure function of the input rows.
"""
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Feature names and order inside each serialised Example (fixed, documented).
BYTES_FEATURES = ("user_id", "book_id")
INT_FEATURES = ("user_index", "book_index", "rating")

_POLY = 0x82F63B78  # CRC32C (Castagnoli), reflected


def _crc_table():
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
    return table


_TABLE = _crc_table()
_POSITION_TABLES = {}


def _advance_zero(c):
    """CRC register after one more zero byte (vectorised over c)."""
    return (c >> np.uint32(8)) ^ _TABLE[c & np.uint32(0xFF)]


def _position_tables(length):
    """([length, 256] uint32 contribution of byte b at position j, CRC of zeros)."""
    cached = _POSITION_TABLES.get(length)
    if cached is not None:
        return cached
    tables = np.empty((length, 256), dtype=np.uint32)
    current = _TABLE.copy()
    for j in range(length - 1, -1, -1):
        tables[j] = current
        current = _advance_zero(current)
    register = np.array([0xFFFFFFFF], dtype=np.uint32)
    for _ in range(length):
        register = _advance_zero(register)
    result = (tables, np.uint32(register[0]))
    _POSITION_TABLES[length] = result
    return result


def crc32c_rows(matrix):
    """CRC32C of every row of an [n, length] uint8 matrix (all rows the same length)."""
    n, length = matrix.shape
    tables, zeros_crc = _position_tables(length)
    acc = np.full(n, zeros_crc, dtype=np.uint32)
    for j in range(length):
        acc ^= tables[j][matrix[:, j]]
    return acc ^ np.uint32(0xFFFFFFFF)


def crc32c_bytes(data):
    """CRC32C of one bytes object (used for the constant length headers)."""
    return int(crc32c_rows(np.frombuffer(bytes(data), dtype=np.uint8)[None, :])[0])


def masked_crc(crc):
    """TFRecord's masked CRC32C of uint32 CRCs."""
    crc = np.asarray(crc, dtype=np.uint64)
    rotated = ((crc >> np.uint64(15)) | (crc << np.uint64(17))) & np.uint64(0xFFFFFFFF)
    return ((rotated + np.uint64(0xA282EAD8)) & np.uint64(0xFFFFFFFF)).astype("<u4")


def varint_parts(values):
    """Protobuf varints: ([n, 10] bytes, byte lengths) of non-negative ints."""
    x = np.asarray(values).astype(np.uint64)
    n = len(x)
    out = np.zeros((n, 10), dtype=np.uint8)
    lengths = np.ones(n, dtype=np.int64)
    for i in range(10):
        low = (x & np.uint64(0x7F)).astype(np.uint8)
        x = x >> np.uint64(7)
        more = x != 0
        out[:, i] = low | (more.astype(np.uint8) << 7)
        if i < 9:
            lengths += more
        if not more.any():
            break
    return out, lengths


def _bytes_matrix(values):
    """numpy 'S<w>' array -> ([n, w] uint8, lengths)."""
    values = np.asarray(values)
    if values.dtype.kind != "S":
        values = values.astype("S")
    n, w = len(values), max(values.dtype.itemsize, 1)
    if n == 0:
        return np.zeros((0, w), np.uint8), np.zeros(0, np.int64)
    matrix = np.frombuffer(np.ascontiguousarray(values).tobytes(), dtype=np.uint8).reshape(n, w)
    return matrix, np.char.str_len(values).astype(np.int64)


def _entry_header(key, value_len, int_feature):
    """Bytes of one FeaturesEntry up to its value, for a value of `value_len` bytes."""
    key = key.encode()
    body = 8 + len(key) + value_len
    kind = b"\x1a" if int_feature else b"\x0a"  # Feature.int64_list = 3, bytes_list = 1
    return (b"\x0a" + bytes([body]) + b"\x0a" + bytes([len(key)]) + key + b"\x12"
            + bytes([4 + value_len]) + kind + bytes([2 + value_len]) + b"\x0a" + bytes([value_len]))


def _varint_bytes(value):
    """Protobuf varint of one int (used for constant lengths)."""
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def framed_records(user_id, book_id, user_index, book_index, rating):
    """TFRecord bytes (framing + serialised Examples, not yet gzipped) for a block of rows."""
    n = len(user_index)
    if n == 0:
        return b""
    columns = [_bytes_matrix(user_id), _bytes_matrix(book_id)]
    columns += [varint_parts(v) for v in (user_index, book_index, rating)]
    names = BYTES_FEATURES + INT_FEATURES
    lengths = np.stack([c[1] for c in columns], axis=1)  # [n, 5]
    if int(lengths.max()) > 100:
        raise ValueError("an id is longer than 100 bytes")
    signature = lengths @ np.array([1, 128, 128 ** 2, 128 ** 3, 128 ** 4], dtype=np.int64)
    order = np.argsort(signature, kind="stable")
    signature, lengths = signature[order], lengths[order]
    # Rows sorted by layout; transposed copies make every byte column contiguous.
    sources = [m[order] for m, _ in columns]
    sources_t = [np.ascontiguousarray(m.T) for m in sources]
    starts = np.flatnonzero(np.r_[True, signature[1:] != signature[:-1]])
    ends = np.r_[starts[1:], n]
    pieces = []
    for s, e in zip(starts, ends):
        m = e - s
        lens = [int(v) for v in lengths[s]]
        headers = [_entry_header(name, ln, i >= 2) for i, (name, ln) in enumerate(zip(names, lens))]
        features_len = sum(len(h) + ln for h, ln in zip(headers, lens))
        prefix = b"\x0a" + _varint_bytes(features_len)
        record_len = len(prefix) + features_len
        length_field = int(record_len).to_bytes(8, "little")
        frame_head = length_field + int(masked_crc([crc32c_bytes(length_field)])[0]).to_bytes(4, "little")
        tables, zeros_crc = _position_tables(record_len)
        block = np.empty((m, 12 + record_len + 4), dtype=np.uint8)
        template = bytearray(prefix)
        variable = []  # (position in record, source index, length)
        for k, (header, ln) in enumerate(zip(headers, lens)):
            template += header
            variable.append((len(template), k, ln))
            template += bytes(ln)
        template = np.frombuffer(bytes(template), dtype=np.uint8)
        block[:, :12] = np.frombuffer(frame_head, dtype=np.uint8)
        block[:, 12:12 + record_len] = template
        crc = np.full(m, zeros_crc ^ np.bitwise_xor.reduce(tables[np.arange(record_len), template]),
                      dtype=np.uint32)
        for pos, k, ln in variable:
            block[:, 12 + pos:12 + pos + ln] = sources[k][s:e, :ln]
            for j in range(ln):
                crc ^= tables[pos + j][sources_t[k][j, s:e]] ^ tables[pos + j][0]
        crc = masked_crc(crc ^ np.uint32(0xFFFFFFFF))
        block[:, 12 + record_len:] = crc.view(np.uint8).reshape(m, 4)
        pieces.append(block.tobytes())
    return b"".join(pieces)


class GzipTFRecordWriter:
    """Streams blocks of examples into a deterministic gzip stream (mtime 0).

    With `background=True` the deflate and the write of block i run in one helper
    thread while the caller encodes block i+1: zlib and file writes release the
    GIL, so encoding and compression use two cores. One helper thread keeps the
    stream order, so the bytes are the same either way; at most one block waits.
    """

    def __init__(self, handle, level=1, background=False):
        self._handle = handle
        self._zip = zlib.compressobj(level, zlib.DEFLATED, 31)
        self._pool = ThreadPoolExecutor(max_workers=1) if background else None
        self._pending = None
        self.count = 0

    def _compress_and_write(self, data):
        self._handle.write(self._zip.compress(data))

    def _wait(self):
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # re-raises an error of the helper thread

    def write_block(self, user_id, book_id, user_index, book_index, rating):
        data = framed_records(user_id, book_id, user_index, book_index, rating)
        self.count += len(user_index)
        if self._pool is None:
            self._compress_and_write(data)
            return
        self._wait()
        self._pending = self._pool.submit(self._compress_and_write, data)

    def close(self):
        try:
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        self._handle.write(self._zip.flush())

    def abort(self):
        """Stops the helper thread after an error; the (partial) stream is abandoned."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
