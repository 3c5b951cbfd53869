"""Graph text a whole column at a time, for files with 100k books and 1M edges.

Written one Python string per node and per edge, graph.gexf, graph.json and
graph.nodelink.json of a 100k-book graph took ~14 s together, as long as the
top-k search itself. Here each piece of text (cleaned and escaped strings,
numbers, whole XML elements or JSON objects) is an Arrow string column made by
Arrow's compute kernels, and a batch of rows reaches the file as one buffer.

The text rules are those of `gexf_writer.clean_text` / `token` / `xml_attr`
(the same characters removed, the same entities, the same whitespace collapsing),
so every format carries identical labels. Numbers are written in Arrow's shortest
round-trip form ("0.25", "1e-7", "3"), valid as XML Schema doubles and as JSON.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Characters XML 1.0 cannot carry (gexf_writer._XML_FORBIDDEN as an RE2 class;
# lone surrogates cannot occur in Arrow's UTF-8 strings).
_XML_FORBIDDEN = r"[^\x{9}\x{A}\x{D}\x{20}-\x{D7FF}\x{E000}-\x{FFFD}\x{10000}-\x{10FFFF}]"
# What str.split() splits on (every str.isspace() character lies in the BMP).
_WHITESPACE = "[" + "".join(f"\\x{{{c:X}}}" for c in range(0x10000) if chr(c).isspace()) + "]+"
_XML_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"),
                 ("'", "&apos;"), ("\t", "&#9;"), ("\n", "&#10;"), ("\r", "&#13;"))
# What json.dumps(ensure_ascii=False) escapes in text that clean() has left.
_JSON_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def _array(values):
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    return pa.array(values)


def _replace_all(text, pairs):
    for old, new in pairs:
        text = pc.replace_substring(text, old, new)
    return text


def clean(values):
    """Values as strings without the characters XML 1.0 (and strict JSON) cannot carry."""
    text = _array(values)
    if not pa.types.is_string(text.type):
        text = text.cast(pa.string())
    return pc.replace_substring_regex(text, _XML_FORBIDDEN, "")


def collapsed(values):
    """`clean`, then whitespace runs made one space and the ends trimmed (XML `token`)."""
    return pc.utf8_trim(pc.replace_substring_regex(clean(values), _WHITESPACE, " "), " ")


def xml(values):
    """`clean`ed and escaped for a double-quoted XML attribute (null stays null)."""
    return _replace_all(clean(values), _XML_ENTITIES)


def json_string(values):
    """JSON string literals of the `clean`ed values; null -> `null`."""
    quoted = concat('"', _replace_all(clean(values), _JSON_ESCAPES), '"')
    return pc.fill_null(quoted, "null")


def numbers(values, what="value"):
    """Numbers as text; null and non-finite values -> null, booleans -> true/false."""
    array = _array(values)
    if pa.types.is_boolean(array.type):
        return pc.if_else(array, "true", "false")
    if pa.types.is_floating(array.type):
        array = pc.if_else(pc.is_finite(array), array, None)
    elif not pa.types.is_integer(array.type):
        raise TypeError(f"{what}: {array.type} is not a number type")
    return array.cast(pa.string())


def integers(values):
    """Integers (numpy, lists or Arrow) as decimal text."""
    return _array(np.asarray(values, np.int64)).cast(pa.string())


def finite_numbers(values, what):
    """`numbers`, raising ValueError on a null or non-finite value (positions, weights)."""
    text = numbers(values, what)
    if text.null_count:
        raise ValueError(f"{what}: a missing or non-finite number cannot be written")
    return text


def concat(*parts):
    """Row-wise concatenation of string columns and literals; a null part makes the row null."""
    return pc.binary_join_element_wise(*parts, "")


def optional(text, before, after):
    """`before + text + after` where text is not null, "" where it is (an omitted element)."""
    return pc.fill_null(concat(before, text, after), "")


def as_bytes(rows):
    """The UTF-8 bytes of all rows back to back (no separator): one copy of Arrow's buffer."""
    rows = _array(rows)
    if rows.null_count:
        raise ValueError("a row of graph text is null")
    if len(rows) == 0:
        return b""
    offsets = np.frombuffer(rows.buffers()[1], np.int32 if pa.types.is_string(rows.type)
                            else np.int64)
    start, stop = int(offsets[rows.offset]), int(offsets[rows.offset + len(rows)])
    return rows.buffers()[2][start:stop].to_pybytes()
