"""Vectorised tf.train.Example encoding and GZIP TFRecord framing.

Serialising tens of millions of examples one `tf.train.Example` at a time costs a
Python call per record. The examples here have a fixed schema and
dictionary-shaped columns: user_id and user_index are functions of the user,
book_id and book_index of the book, only the rating is per row. So
`ExampleEncoder` serialises each distinct user's and book's part of an Example
once (a few hundred thousand users, a few thousand books per job), together
with the CRC32C of that part, and a block of rows then costs, per row, a handful
of numpy gathers for the CRC and one pyarrow `take` that concatenates the
row's pieces (frame head, book part, user part, rating part, CRC) in input
order. No Python call is made per record.

Inside each Example the features are serialised in the order book_id,
book_index, user_id, user_index, rating (protobuf readers accept map entries in
any order). The rating
is last and the user part just before it, so the CRC contribution of a part is
the part's own CRC "shifted" by the few bytes that follow it (CRC is linear over
GF(2)); these shifted CRCs are per distinct value and per distinct shift, cached.

The bytes are standard protobuf wire format, so `tf.io.parse_example` (or
`tf.train.Example.FromString`) reads them like any other Example. Records are
written in input order: the framed bytes of a block are a pure function of its
rows, and framing two blocks gives the same bytes as framing their
concatenation.

Compression uses ISA-L (`isal`), ~4x faster than zlib level 1 and no bigger. Its
gzip stream is standard gzip (mtime 0) and the same bytes for the same blocks
(not for other block sizes: deflate output depends on how input is fed, unlike
the framed bytes above). ISA-L has levels 0..3; `--compression_level` 1..9 maps onto
them as `ISAL_LEVELS` says (1-3 fast, 4-6 default, 7-9 smallest).
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from isal import isal_zlib

MAX_ID_BYTES = 100  # keeps every length inside an entry a one-byte varint

# gzip level 1..9 -> ISA-L level (ISA-L 0 is faster still but ~25% bigger).
ISAL_LEVELS = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2, 7: 3, 8: 3, 9: 3}

_POLY = 0x82F63B78  # CRC32C (Castagnoli), reflected
_MAX_FEATURES_LEN = 511  # > any Example here: 5 entries of at most 117 bytes


def _crc_table():
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
    return table


_TABLE = _crc_table()
_POSITION_TABLES = {}
_SHIFT_TABLES = {}
_HEADS = []


def _advance_zero(c):
    """CRC register after one more zero byte (vectorised over c)."""
    return (c >> np.uint32(8)) ^ _TABLE[c & np.uint32(0xFF)]


def _position_tables(length):
    """[length, 256] uint32: raw CRC (register 0) contribution of byte b at position j."""
    tables = _POSITION_TABLES.get(length)
    if tables is None:
        tables = np.empty((length, 256), dtype=np.uint32)
        current = _TABLE.copy()
        for j in range(length - 1, -1, -1):
            tables[j] = current
            current = _advance_zero(current)
        _POSITION_TABLES[length] = tables
    return tables


def _shift_tables(k):
    """[4, 256] uint32 tables of "append k zero bytes" for each byte of a register."""
    tables = _SHIFT_TABLES.get(k)
    if tables is None:
        tables = (np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32))[:, None])
        for _ in range(k):
            tables = _advance_zero(tables)
        _SHIFT_TABLES[k] = tables
    return tables


def shift_crc(c, k):
    """Raw CRC registers `c` after k more zero bytes: crc(X || Y) = shift(crc(X), |Y|) ^ crc(Y)."""
    t = _shift_tables(k)
    return (t[0][c & np.uint32(0xFF)] ^ t[1][(c >> np.uint32(8)) & np.uint32(0xFF)]
            ^ t[2][(c >> np.uint32(16)) & np.uint32(0xFF)] ^ t[3][c >> np.uint32(24)])


def _crc32c(data):
    """CRC32C of one short bytes object (constant headers only)."""
    reg = 0xFFFFFFFF
    for x in data:
        reg = (reg >> 8) ^ int(_TABLE[(reg ^ x) & 0xFF])
    return reg ^ 0xFFFFFFFF


def masked_crc(crc):
    """TFRecord's masked CRC32C of uint32 CRCs."""
    crc = np.asarray(crc, dtype=np.uint32)
    rotated = (crc >> np.uint32(15)) | (crc << np.uint32(17))
    return (rotated + np.uint32(0xA282EAD8)).astype("<u4")  # wraps modulo 2**32


def varint_parts(values):
    """Protobuf varints: ([n, 10] bytes, byte lengths) of ints (negatives as 10 bytes, like int64)."""
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


def _varint_bytes(value):
    """Protobuf varint of one int (constant lengths only)."""
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _bytes_matrix(values):
    """numpy 'S<w>' array (or anything numpy turns into one) -> ([n, w] uint8, lengths)."""
    values = np.asarray(values)
    if values.dtype.kind != "S":
        values = values.astype("S")
    n, w = len(values), max(values.dtype.itemsize, 1)
    if n == 0:
        return np.zeros((0, w), np.uint8), np.zeros(0, np.int64)
    matrix = np.ascontiguousarray(values).view(np.uint8).reshape(n, values.dtype.itemsize)
    return matrix, np.char.str_len(values).astype(np.int64)


def _entry_header(key, value_len, int_feature):
    """Bytes of one FeaturesEntry up to its value, for a value of `value_len` bytes."""
    key = key.encode()
    body = 8 + len(key) + value_len
    kind = b"\x1a" if int_feature else b"\x0a"  # Feature.int64_list = 3, bytes_list = 1
    return (b"\x0a" + bytes([body]) + b"\x0a" + bytes([len(key)]) + key + b"\x12"
            + bytes([4 + value_len]) + kind + bytes([2 + value_len]) + b"\x0a" + bytes([value_len]))


def _ragged(matrix, lengths):
    """Left-aligned [n, w] byte matrix + row lengths -> (concatenated row bytes, lengths)."""
    keep = np.arange(matrix.shape[1]) < lengths[:, None]
    return matrix[keep], lengths


def _from_bytes_list(items):
    """(concatenated bytes, lengths) of a few Python bytes objects (constant tables only)."""
    return (np.frombuffer(b"".join(items), dtype=np.uint8),
            np.array([len(x) for x in items], dtype=np.int64))


def _concat_rows(parts, index, out_bytes):
    """Row i = pool[index[i, 0]] + pool[index[i, 1]] + ..., pool = the entries of `parts` in order.

    parts: [(bytes, lengths)]; out_bytes: the total length of the result.
    Returns (bytes of all rows as one buffer, row offsets). The gather is one
    pyarrow `take` over a large_binary pool. That take reserves (mean pool
    entry length x number taken) bytes and grows by reallocation past that, which
    is slow for big blocks; a padding entry (never taken, its memory never
    touched) makes the mean large enough that the reservation fits.
    """
    n, k = index.shape
    lengths = np.concatenate([part_lengths for _, part_lengths in parts])
    total = int(lengths.sum())
    pad = max(0, -(-out_bytes * (len(lengths) + 1) // max(n * k, 1)) - total)
    data = np.empty(total + pad, dtype=np.uint8)
    offsets = np.empty(len(lengths) + 2, dtype=np.int64)
    offsets[0] = 0
    np.cumsum(lengths, out=offsets[1:-1])
    offsets[-1] = total + pad
    at = 0
    for part_data, _ in parts:
        data[at:at + len(part_data)] = part_data
        at += len(part_data)
    pool = pa.Array.from_buffers(pa.large_binary(), len(offsets) - 1,
                                 [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    taken = pc.take(pool, pa.array(index.reshape(-1)))
    offsets = np.frombuffer(taken.buffers()[1], dtype=np.int64, count=n * k + 1, offset=taken.offset * 8)
    rows = memoryview(taken.buffers()[2])[offsets[0]:offsets[-1]]
    return rows, offsets[::k] - offsets[0]


def _raw_crc(data, offsets):
    """Raw CRC (register 0, no final xor) of each ragged row, vectorised over rows.

    Leading zero bytes leave a zero register unchanged, so the rows are
    right-aligned in one zero-padded matrix and summed column by column.
    """
    lengths = np.diff(offsets)
    n = len(lengths)
    width = int(lengths.max(initial=0))
    acc = np.zeros(n, dtype=np.uint32)
    if width == 0:
        return acc
    matrix = np.zeros((n, width), dtype=np.uint8)
    matrix[np.arange(width) >= width - lengths[:, None]] = np.frombuffer(data, dtype=np.uint8)
    tables = _position_tables(width)
    for j in range(width):
        acc ^= tables[j][matrix[:, j]]
    return acc


class _Parts:
    """Serialised feature entries of a dictionary (one concatenated part per value) and their CRCs."""

    def __init__(self, columns):
        """columns: [(feature name, values, is_int)], all of the same length."""
        n = len(columns[0][1])
        pieces, index = [], []
        base = 0
        for name, values, is_int in columns:
            matrix, lengths = varint_parts(values) if is_int else _bytes_matrix(values)
            if len(values) != n:
                raise ValueError("dictionary columns differ in length")
            if int(lengths.max(initial=0)) > MAX_ID_BYTES:
                raise ValueError(f"a {name} is longer than {MAX_ID_BYTES} bytes")
            headers = [_entry_header(name, ln, is_int) for ln in range(matrix.shape[1] + 1)]
            pieces += [_from_bytes_list(headers), _ragged(matrix, lengths)]
            index += [base + lengths, base + len(headers) + np.arange(n)]
            base += len(headers) + n
        self.size = n
        if n:
            index = np.stack(index, axis=1)
            lengths = np.concatenate([part_lengths for _, part_lengths in pieces])
            data, offsets = _concat_rows(pieces, index, int(lengths[index].sum()))
        else:
            data, offsets = np.zeros(0, np.uint8), np.zeros(1, np.int64)
        self.data = np.frombuffer(data, dtype=np.uint8)
        self.lengths = np.diff(offsets)
        self.raw_crc = _raw_crc(data, offsets)
        self._shifted = {}

    def shifted_crc(self, shift, codes):
        """CRC contribution of part codes[i] when `shift[i]` bytes follow it."""
        present = np.flatnonzero(np.bincount(shift))
        for k in present:
            if k not in self._shifted:
                self._shifted[k] = shift_crc(self.raw_crc, int(k))
        if len(present) == 1:
            return self._shifted[present[0]][codes]
        slot = np.zeros(present[-1] + 1, dtype=np.int64)
        slot[present] = np.arange(len(present)) * self.size
        return np.concatenate([self._shifted[k] for k in present])[slot[shift] + codes]


def _heads():
    """Per features length f: (frame head + Example prefix bytes, CRC32C of prefix + f zero bytes)."""
    if not _HEADS:
        heads, prefix_regs = [], []
        for f in range(_MAX_FEATURES_LEN + 1):
            prefix = b"\x0a" + _varint_bytes(f)
            length_field = (len(prefix) + f).to_bytes(8, "little")
            length_crc = masked_crc(np.array([_crc32c(length_field)], dtype=np.uint32))
            heads.append(length_field + length_crc.tobytes() + prefix)
            prefix_regs.append(_crc32c(prefix) ^ 0xFFFFFFFF)
        regs = np.array(prefix_regs, dtype=np.uint32)
        f = np.arange(_MAX_FEATURES_LEN + 1)
        for step in range(_MAX_FEATURES_LEN):
            regs = np.where(step < f, _advance_zero(regs), regs)
        _HEADS.extend([_from_bytes_list(heads), regs ^ np.uint32(0xFFFFFFFF)])
    return _HEADS


def _small_codes(values):
    """(distinct values, codes) of an int array; a cheap offset when the range is small."""
    values = np.asarray(values).astype(np.int64)
    low, high = int(values.min()), int(values.max())
    if high - low < 1024:
        return np.arange(low, high + 1, dtype=np.int64), values - low
    distinct, codes = np.unique(values, return_inverse=True)
    return distinct, codes.reshape(-1)


class ExampleEncoder:
    """TFRecord framing of Examples whose users and books come from dictionaries.

    Built once per dictionary (e.g. one partition's users and the selected
    books): it serialises each user's and book's entries and their CRCs, so that
    `framed` costs per row only a few gathers and one concatenating `take`.
    """

    def __init__(self, user_id, user_index, book_id, book_index):
        self._books = _Parts([("book_id", book_id, False), ("book_index", book_index, True)])
        self._users = _Parts([("user_id", user_id, False), ("user_index", user_index, True)])
        heads, self._head_crc = _heads()
        self._parts = [heads, (self._books.data, self._books.lengths), (self._users.data, self._users.lengths)]
        self._base = np.cumsum([0] + [len(lengths) for _, lengths in self._parts])  # + ratings, CRCs

    def framed(self, user_code, book_code, rating):
        """TFRecord bytes (framing + serialised Examples, not yet gzipped) of a block, as a buffer.

        Row i is (user_id[user_code[i]], user_index[user_code[i]],
        book_id[book_code[i]], book_index[book_code[i]], rating[i]).
        """
        users = np.asarray(user_code).astype(np.int64, copy=False)
        books = np.asarray(book_code).astype(np.int64, copy=False)
        n = len(users)
        if len(books) != n or len(rating) != n:
            raise ValueError("user_code, book_code and rating differ in length")
        if n == 0:
            return memoryview(b"")
        for codes, size, name in ((users, self._users.size, "user"), (books, self._books.size, "book")):
            if int(codes.min()) < 0 or int(codes.max()) >= size:
                raise ValueError(f"a {name} code is outside the dictionary")
        distinct, rating_code = _small_codes(rating)
        ratings = _Parts([("rating", distinct, True)])
        rating_len = ratings.lengths[rating_code]
        after_books = self._users.lengths[users] + rating_len
        features_len = self._books.lengths[books] + after_books
        crc = (self._head_crc[features_len] ^ self._books.shifted_crc(after_books, books)
               ^ self._users.shifted_crc(rating_len, users) ^ ratings.raw_crc[rating_code])
        crc_bytes = masked_crc(crc).view(np.uint8)
        parts = self._parts + [(ratings.data, ratings.lengths), (crc_bytes, np.full(n, 4, dtype=np.int64))]
        index = np.empty((n, 5), dtype=np.int64)
        index[:, 0] = features_len  # heads are indexed by the features length
        index[:, 1] = books + self._base[1]
        index[:, 2] = users + self._base[2]
        index[:, 3] = rating_code + self._base[3]
        index[:, 4] = np.arange(self._base[3] + ratings.size, self._base[3] + ratings.size + n)
        # a record is its features + 1 tag byte + <= 3 length bytes + 16 framing bytes
        return _concat_rows(parts, index, int(features_len.sum()) + 20 * n)[0]


class GzipTFRecordWriter:
    """Streams blocks of examples into a deterministic gzip stream (ISA-L, mtime 0).

    With `background=True` the deflate and the write of block i run in one helper
    thread while the caller encodes block i+1: ISA-L and file writes release the
    GIL, so encoding and compression use two cores. One helper thread keeps the
    stream order, so the bytes are the same either way; at most one block waits.
    """

    def __init__(self, handle, level=1, background=False):
        if level not in ISAL_LEVELS:
            raise ValueError(f"compression level {level} is not in 1..9")
        self._handle = handle
        self._zip = isal_zlib.compressobj(ISAL_LEVELS[level], isal_zlib.DEFLATED, 31)
        self._pool = ThreadPoolExecutor(max_workers=1) if background else None
        self._pending = None
        self.count = 0

    def _compress_and_write(self, data):
        self._handle.write(self._zip.compress(data))

    def _wait(self):
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # re-raises an error of the helper thread

    def _submit(self, data, count):
        self.count += count
        if self._pool is None:
            self._compress_and_write(data)
            return
        self._wait()
        self._pending = self._pool.submit(self._compress_and_write, data)

    def write_coded(self, encoder, user_code, book_code, rating):
        """Appends rows given as dictionary codes of an `ExampleEncoder`."""
        self._submit(encoder.framed(user_code, book_code, rating), len(user_code))

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
