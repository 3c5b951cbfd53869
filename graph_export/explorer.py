"""Writes one self-contained HTML file: the whole map of books, and each book's neighbourhood.

    python -m graph_export.explorer --graph GRAPH --output explorer.html
        [--max_nodes N] [--neighbours K]

The page needs no server and no network: it is opened straight from disk
(``file://``). It holds the viewer (plain JavaScript and its own small WebGL
point renderer, no library, no build step; sources in
``graph_export/explorer_web/``) and the graph read from the documented artifacts
``GRAPH/nodes.parquet``, ``GRAPH/edges.parquet`` and, when present,
``GRAPH/communities.parquet`` (docs/artifacts.md section 3; docs/explorer.md).

It opens on the whole map: every book at its layout position (``x``, ``y``),
coloured by region or community and sized by popularity, with region,
community and title labels by zoom. Search or a click selects a book, its
nearest books and the reasons they are neighbours; a button opens the ego
graph of the book (rings around it), as the explorer has always shown.

The data is packed to stay small at a million books: every per-book and
per-edge column is a little-endian typed array, byte-shuffled (the i-th byte of
every value together) and zlib-compressed, then base64; text columns (titles,
authors, book ids) are NUL-joined UTF-8, compressed the same way. The browser
inflates them with its built-in ``DecompressionStream``; no per-book objects
are built. Positions are quantised to 16 bits per axis, sizes to 8 bits.

Titles and names are data, never markup: the compressed text cannot hold
``<`` at all, the JSON block escapes ``<``, ``>``, ``&``, U+2028 and U+2029 in
the names it holds, the viewer writes text only with ``textContent`` (labels
included), and a Content-Security-Policy allows nothing but the page's own
(hash-pinned) script and style, no network.
"""
import base64
import hashlib
import json
import logging
import os
import re
import zlib

import numpy as np
import pyarrow.compute as pc

from pipeline_common import artifacts, cli, config, fileio
from pipeline_common.arrays import sorted_unique
from pipeline_common.cli import positive_int
from pipeline_common.entrypoint import main
from pipeline_common.errors import UserError

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "explorer_web")
COMMUNITIES = getattr(artifacts, "COMMUNITIES", "communities.parquet")
NODE_COLUMNS = ("book_index", "title")
EDGE_COLUMNS = ("source", "target", "rank", "cosine")
EDGE_REASONS = ("co_readers", "shared_authors", "shared_shelves")
OPTIONAL_TEXT = ("book_id", "authors", "genre", "community_name", "region_name")
OPTIONAL_NUMBERS = ("ratings_count", "average_rating", "num_interactions", "in_degree",
                    "community", "region", "x", "y")
FORMAT_VERSION = 2
LARGE_FILE_BYTES = 150_000_000   # past this, suggest --max_nodes
ALL_NEIGHBOURS_UP_TO = 250_000   # default --neighbours: every edge up to here, then 10
NEIGHBOURS_BEYOND = 10
U4_NONE, U2_NONE = 2**32 - 1, 2**16 - 1


def _read_table(path, columns=None):
    if not fileio.exists(path):
        raise UserError(f"{path} not found (expected graph_export.neighbors output)")
    if columns is not None:
        names = artifacts.read_parquet_schema(path).names
        columns = [name for name in columns if name in names]
    return artifacts.read_parquet(path, columns=columns)


def _require(table, names, path):
    missing = [name for name in names if name not in table.column_names]
    if missing:
        raise UserError(f"{path} lacks column(s) {', '.join(missing)}")


def _numbers(column):
    """A numeric arrow column as float64 numpy (null -> NaN)."""
    return column.to_numpy(zero_copy_only=False).astype(np.float64)


def _dictionary(column):
    """A string column as (codes int32 numpy, -1 for null or "", sorted distinct strings),
    without one Python string per row (20M edges at a million books)."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    names = encoded.dictionary.to_pylist()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    order = sorted(range(len(names)), key=lambda i: names[i])
    order = [i for i in order if names[i]]
    remap = np.full(len(names) + 1, -1, dtype=np.int32)      # last slot: code -1 stays -1
    remap[order] = np.arange(len(order), dtype=np.int32)
    return remap[codes], [names[i] for i in order]


def read_graph(graph_dir):
    """Reads the graph files into (nodes, edges, communities) dicts of numpy arrays / lists.

    Columns beyond the required ones are optional: older graph files (no region,
    names or edge reasons) still open. communities is None without communities.parquet.
    """
    nodes_path = fileio.join(graph_dir, artifacts.NODES)
    edges_path = fileio.join(graph_dir, artifacts.EDGES)
    nodes_table = _read_table(nodes_path, columns=list(NODE_COLUMNS + OPTIONAL_TEXT
                                                       + OPTIONAL_NUMBERS))
    _require(nodes_table, NODE_COLUMNS, nodes_path)
    edges_table = _read_table(edges_path, columns=list(EDGE_COLUMNS + EDGE_REASONS))
    _require(edges_table, EDGE_COLUMNS, edges_path)
    nodes = {}
    for name in nodes_table.column_names:
        column = nodes_table.column(name)
        nodes[name] = column.to_pylist() if name in NODE_COLUMNS[1:] + OPTIONAL_TEXT \
            else _numbers(column)
    nodes["book_index"] = nodes_table.column("book_index").to_numpy(
        zero_copy_only=False).astype(np.int64)
    edges = {name: edges_table.column(name).to_numpy(zero_copy_only=False)
             for name in EDGE_COLUMNS}
    stray = unknown_books(nodes["book_index"], edges["source"], edges["target"])
    if stray:
        raise UserError(f"{edges_path} names book_index {stray[0]}, which {nodes_path} lacks "
                        f"({stray[1]} edge ends): the two files come from different runs; run "
                        "graph_export.neighbors again")
    for name in EDGE_REASONS:
        if name in edges_table.column_names:
            column = edges_table.column(name)
            edges[name] = _dictionary(column) if name == "shared_shelves" else _numbers(column)
    communities = None
    path = fileio.join(graph_dir, COMMUNITIES)
    if fileio.exists(path):
        table = _read_table(path, columns=["level", "id", "parent", "name"])
        _require(table, ("level", "id", "name"), path)
        communities = {name: table.column(name).to_pylist() for name in table.column_names}
    return nodes, edges, communities


def unknown_books(book_index, *ends, chunk=1 << 22):
    """(first, count) of the edge ends not in `book_index`, or None when every end is a node."""
    known = np.sort(np.asarray(book_index, np.int64))
    first, count = None, 0
    for values in ends:
        for start in range(0, len(values), chunk):
            part = np.asarray(values[start:start + chunk], np.int64)
            at = np.minimum(np.searchsorted(known, part), max(len(known) - 1, 0))
            bad = part[known[at] != part] if len(known) else part
            if len(bad):
                first = int(bad[0]) if first is None else first
                count += len(bad)
    return (first, count) if count else None


def select_nodes(book_index, max_nodes):
    """Row positions of the books to keep, in book_index order.

    Book indices are ordered by interaction count (docs/artifacts.md), so the
    first `max_nodes` are the most-read books.
    """
    order = np.argsort(book_index, kind="stable")
    if len(sorted_unique(book_index)) != len(book_index):
        raise UserError("nodes.parquet has duplicate book_index values")
    if max_nodes is not None:
        order = order[:max_nodes]
    return order


def build_adjacency(kept_index, edges, neighbours=None):
    """CSR adjacency over kept rows, each list in rank order, at most `neighbours` long.

    Edges to or from books not kept are dropped. Returns (offsets[n+1], targets
    (row numbers), edge positions into `edges` (to pick other edge columns), dropped
    count (edges to books not kept), trimmed count (edges past `neighbours`)).
    """
    n = len(kept_index)
    source = np.asarray(edges["source"], dtype=np.int64)
    target = np.asarray(edges["target"], dtype=np.int64)
    src_row = np.searchsorted(kept_index, source)
    dst_row = np.searchsorted(kept_index, target)
    src_ok = (src_row < n) & (kept_index[np.minimum(src_row, n - 1)] == source)
    dst_ok = (dst_row < n) & (kept_index[np.minimum(dst_row, n - 1)] == target)
    keep = src_ok & dst_ok & (source != target)
    picked = np.flatnonzero(keep)
    src_row, dst_row = src_row[keep], dst_row[keep]
    rank = np.asarray(edges["rank"], dtype=np.int64)[keep]
    order = np.lexsort((rank, src_row))
    src_row, dst_row, picked = src_row[order], dst_row[order], picked[order]
    counts = np.bincount(src_row, minlength=n)
    trimmed = 0
    if neighbours is not None and len(src_row):
        starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        within = np.arange(len(src_row)) - starts[src_row] < neighbours
        trimmed = int((~within).sum())
        src_row, dst_row, picked = src_row[within], dst_row[within], picked[within]
        counts = np.bincount(src_row, minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, dst_row, picked, int((~keep).sum()), trimmed


# ---- packing -----------------------------------------------------------------------


def pack_array(array, dtype):
    """A typed array as {"type", "n", "data"}: little-endian, byte-shuffled, zlib, base64."""
    values = np.ascontiguousarray(array, dtype=dtype)
    raw = values.view(np.uint8)
    if values.itemsize > 1:   # byte planes: the high bytes of small numbers compress to ~0
        raw = raw.reshape(-1, values.itemsize).T
    data = zlib.compress(np.ascontiguousarray(raw).tobytes(), 6)
    return {"type": f"{values.dtype.kind}{values.itemsize}", "n": int(values.size),
            "data": base64.b64encode(data).decode("ascii")}


def unpack_array(packed):
    """Inverse of pack_array (for tests and tools)."""
    dtype = np.dtype("<" + packed["type"])
    raw = np.frombuffer(zlib.decompress(base64.b64decode(packed["data"])), dtype=np.uint8)
    if dtype.itemsize > 1:
        raw = raw.reshape(dtype.itemsize, -1).T
    return np.ascontiguousarray(raw).view(dtype).reshape(-1)


def _clean_text(value):
    return "" if value is None else str(value).replace("\0", "\ufffd")


def pack_text(values):
    """Strings as {"n", "data"}: NUL-joined UTF-8 (None -> ""), zlib, base64."""
    values = [_clean_text(value) for value in values]
    data = zlib.compress("\0".join(values).encode("utf-8"), 6)
    return {"n": len(values), "data": base64.b64encode(data).decode("ascii")}


def unpack_text(packed):
    """Inverse of pack_text (for tests and tools)."""
    if packed["n"] == 0:
        return []
    return zlib.decompress(base64.b64decode(packed["data"])).decode("utf-8").split("\0")


# ---- map: positions, sizes, regions and communities -----------------------------------

def map_positions(x, y, n):
    """Layout x/y -> 16-bit grid over the square that holds them (aspect kept).

    Returns (qx, qy, extent): positions are q / 65535 in units where the larger
    side spans 0..1; extent is the (width, height) of the map in those units.
    Missing positions go on a sunflower spiral beside nothing, so a page still opens.
    """
    if x is None or y is None:
        x = y = np.full(n, np.nan)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.all():
        angle = np.arange(n) * 2.399963229728653
        radius = np.sqrt(np.arange(n) + 0.5)
        x, y, bad = radius * np.cos(angle), radius * np.sin(angle), np.zeros(n, dtype=bool)
    lo_x, hi_x = x[~bad].min(), x[~bad].max()
    lo_y, hi_y = y[~bad].min(), y[~bad].max()
    span = max(hi_x - lo_x, hi_y - lo_y) or 1.0
    ux = np.where(bad, (hi_x - lo_x) / 2, x - lo_x) / span
    uy = np.where(bad, (hi_y - lo_y) / 2, y - lo_y) / span
    qx = np.rint(ux * 65535).astype(np.uint16)
    qy = np.rint(uy * 65535).astype(np.uint16)
    return qx, qy, [float((hi_x - lo_x) / span), float((hi_y - lo_y) / span)]


def popularity(nodes, pick):
    """The number that sizes a point: ratings_count, else num_interactions, else in_degree."""
    for name in ("ratings_count", "num_interactions", "in_degree"):
        if name in nodes:
            values = nodes[name][pick]
            if np.isfinite(values).any():
                return np.where(np.isfinite(values), values, 0.0)
    return np.zeros(len(pick))


def point_sizes(values):
    """Popularity -> 0..255 on a log scale (the viewer maps it to a radius)."""
    s = np.log1p(np.maximum(values, 0))
    lo, hi = (s.min(), s.max()) if len(s) else (0.0, 0.0)
    if hi <= lo:
        return np.full(len(s), 128, dtype=np.uint8)
    return np.rint(255 * (s - lo) / (hi - lo)).astype(np.uint8)


def _most_common(values):
    counts = {}
    for value in values:
        if value:
            counts[value] = counts.get(value, 0) + 1
    return max(sorted(counts), key=counts.get) if counts else ""


def _first_author(text):
    return text.split(",")[0].strip() if text else ""


def label_spots(xs, ys, bins=8, count=3):
    """Where a group's name may go, best first: the members' median in the densest 3x3
    block of an 8x8 grid over them, then in the next densest blocks apart from it, so a
    region made of several patches is named on its biggest (and on another if that
    place is taken on screen)."""
    xs, ys = np.asarray(xs, dtype=np.int64), np.asarray(ys, dtype=np.int64)
    if len(xs) < 2 * bins:
        return [(int(np.median(xs)), int(np.median(ys)))]
    x0, y0 = xs.min(), ys.min()
    hx = np.minimum((xs - x0) * bins // max(int(xs.max() - x0), 1), bins - 1)
    hy = np.minimum((ys - y0) * bins // max(int(ys.max() - y0), 1), bins - 1)
    grid = np.zeros((bins + 2, bins + 2), dtype=np.int64)
    np.add.at(grid, (hx + 1, hy + 1), 1)
    block = sum(grid[i:i + bins, j:j + bins] for i in range(3) for j in range(3))
    spots = []
    for _ in range(count):
        if block.max() <= 0:
            break
        bx, by = np.unravel_index(np.argmax(block), block.shape)
        near = (np.abs(hx - bx) <= 1) & (np.abs(hy - by) <= 1)
        spots.append((int(np.median(xs[near])), int(np.median(ys[near]))))
        block[max(0, bx - 2):bx + 3, max(0, by - 2):by + 3] = 0     # the next one elsewhere
    return spots


def groups(ids, level, nodes, pick, qx, qy, catalogue=None, parent_ids=None):
    """One level of the map (region or community): per-book codes and a JSON-able table.

    ids: the level's id per kept book (NaN = none). Names come from communities.parquet,
    else the nodes' `<level>_name` column, else the members' most common genre and
    author (older graph files: never a bare "community N" when anything better exists).
    Label positions are in 16-bit map units: x, y the best place, alt the others (label_spots).
    """
    valid = np.isfinite(ids)
    unique = np.unique(ids[valid]).astype(np.int64)
    codes = np.full(len(ids), -1, dtype=np.int32)
    codes[valid] = np.searchsorted(unique, ids[valid].astype(np.int64))
    size = np.bincount(codes[valid], minlength=len(unique))
    order = np.argsort(codes, kind="stable")[int((~valid).sum()):]
    bounds = np.concatenate([[0], np.cumsum(size)])
    named = {}
    if catalogue is not None:
        for lvl, gid, name in zip(catalogue["level"], catalogue["id"], catalogue["name"]):
            if lvl == level and gid is not None and name:
                named[int(gid)] = str(name)
    column = nodes.get(f"{level}_name")
    names, label_x, label_y, alternatives = [], [], [], []
    for code, gid in enumerate(unique.tolist()):
        members = order[bounds[code]:bounds[code + 1]]
        spots = label_spots(qx[members], qy[members])
        label_x.append(spots[0][0])
        label_y.append(spots[0][1])
        alternatives.append([coordinate for spot in spots[1:] for coordinate in spot])
        name = named.get(gid)
        if not name and column is not None:
            name = _most_common(column[pick[m]] for m in members[:2000])
        if not name:
            bits = []
            if "genre" in nodes:
                bits.append(_most_common(nodes["genre"][pick[m]] for m in members[:2000]))
            if "authors" in nodes:
                bits.append(_most_common(_first_author(nodes["authors"][pick[m]])
                                         for m in members[:2000]))
            bits = [bit for bit in bits if bit]
            name = " \u00b7 ".join(bits) if bits else \
                f"around \u201c{_clean_text(nodes['title'][pick[members[0]]])[:40]}\u201d"
        names.append(name)
    table = {"id": unique.tolist(), "name": names, "size": size.tolist(),
             "x": label_x, "y": label_y, "alt": alternatives}
    if parent_ids is not None:
        parents = []
        for code in range(len(unique)):
            members = parent_ids[order[bounds[code]:bounds[code + 1]]]
            members = members[members >= 0]
            parents.append(int(np.bincount(members).argmax()) if len(members) else -1)
        table["parent"] = parents
    return codes, table


# ---- the payload -----------------------------------------------------------------------

def default_neighbours(n):
    """Edges kept per book: all of them up to ALL_NEIGHBOURS_UP_TO books, then 10."""
    return None if n <= ALL_NEIGHBOURS_UP_TO else NEIGHBOURS_BEYOND


def build_payload(nodes, edges, max_nodes=None, communities=None, neighbours="auto"):
    """The JSON-able dict the viewer reads (FORMAT_VERSION 2, docs/explorer.md)."""
    rows = select_nodes(nodes["book_index"], max_nodes)
    kept_index = nodes["book_index"][rows]
    if len(kept_index) and (kept_index.min() < 0 or kept_index.max() >= 2**31):
        raise UserError("book_index values must be in 0..2^31-1")
    n = len(kept_index)
    if neighbours == "auto":
        neighbours = default_neighbours(n)
    offsets, targets, picked, dropped, trimmed = build_adjacency(kept_index, edges, neighbours)
    qx, qy, extent = map_positions(nodes["x"][rows] if "x" in nodes else None,
                                   nodes["y"][rows] if "y" in nodes else None, n)
    arrays = {
        "book_index": pack_array(kept_index, "<i4"),
        "offsets": pack_array(offsets, "<i4"),
        "targets": pack_array(targets, "<i4"),
        "cosine": pack_array(np.asarray(edges["cosine"], dtype=np.float32)[picked], "<f4"),
        "x": pack_array(qx, "<u2"),
        "y": pack_array(qy, "<u2"),
        "size": pack_array(point_sizes(popularity(nodes, rows)), "<u1"),
    }
    payload = {"version": FORMAT_VERSION, "n": int(n), "num_edges": int(len(targets)),
               "total_books": int(len(nodes["book_index"])), "dropped_edges": dropped,
               "trimmed_edges": trimmed, "neighbours": neighbours, "extent": extent,
               "arrays": arrays, "texts": {"title": pack_text(nodes["title"][i] for i in rows)},
               "groups": {}}
    for name in ("book_id", "authors"):
        if name in nodes:
            payload["texts"][name] = pack_text(nodes[name][i] for i in rows)
    if "genre" in nodes:
        genres = [nodes["genre"][i] for i in rows]
        names = sorted({g for g in genres if g})
        lookup = {g: code for code, g in enumerate(names)}
        payload["genre_names"] = names
        arrays["genre"] = pack_array([lookup.get(g, -1) if g else -1 for g in genres], "<i2")
    if "ratings_count" in nodes:
        values = nodes["ratings_count"][rows]
        arrays["ratings_count"] = pack_array(
            np.where(np.isfinite(values), np.clip(values, 0, U4_NONE - 1), U4_NONE), "<u4")
    if "average_rating" in nodes:
        values = nodes["average_rating"][rows]
        arrays["average_rating"] = pack_array(
            np.where(np.isfinite(values), np.rint(np.clip(values, 0, 600) * 100), U2_NONE), "<u2")
    region_codes = None
    if "region" in nodes:
        region_codes, payload["groups"]["region"] = groups(
            nodes["region"][rows], "region", nodes, rows, qx, qy, communities)
        arrays["region"] = pack_array(region_codes, "<i4")
    if "community" in nodes:
        codes, payload["groups"]["community"] = groups(
            nodes["community"][rows], "community", nodes, rows, qx, qy, communities,
            parent_ids=region_codes)
        arrays["community"] = pack_array(codes, "<i4")
    if "co_readers" in edges:
        values = np.asarray(edges["co_readers"], dtype=np.float64)[picked]
        arrays["co_readers"] = pack_array(
            np.where(np.isfinite(values), np.clip(values, 0, U4_NONE - 1), U4_NONE), "<u4")
    if "shared_authors" in edges:
        values = np.asarray(edges["shared_authors"], dtype=np.float64)[picked]
        arrays["shared_authors"] = pack_array(
            np.where(np.isfinite(values), np.clip(values, 0, 254), 255), "<u1")
    if "shared_shelves" in edges:
        codes, names = edges["shared_shelves"]
        codes = codes[picked]
        used = np.unique(codes[codes >= 0])          # only the shelf lists these edges name
        remap = np.full(len(names) + 1, -1, dtype=np.int32)
        remap[used] = np.arange(len(used), dtype=np.int32)
        payload["shelf_names"] = [names[i] for i in used.tolist()]
        arrays["shared_shelves"] = pack_array(remap[codes], "<i4")
    return payload


_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                               "\u2028": "\\u2028", "\u2029": "\\u2029"})


def script_safe_json(obj):
    """JSON text safe inside <script type="application/json">: no '<', '>', '&', U+2028/9."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.translate(_JSON_ESCAPES)


def _read_web(name):
    with open(os.path.join(WEB_DIR, name), encoding="utf-8") as handle:
        return handle.read()


_JS_HEADER = """// Book map explorer: plain JavaScript and its own WebGL point renderer, no library,
// no network. Reads the graph embedded by graph_export/explorer.py (a JSON block of
// compressed typed arrays and texts, docs/explorer.md), draws the whole map and the
// ego graph of one book. Every string from the data is written with textContent /
// SVG text nodes, never parsed as markup.
// Built from graph_export/explorer_web/js/*.js, in file-name order, in one scope.
"""


def viewer_js():
    """The viewer script: the parts in explorer_web/js/ (one job each), in name order, inside
    one function scope, so the page stays one offline file with one hash-pinned script."""
    names = sorted(name for name in os.listdir(os.path.join(WEB_DIR, "js")) if name.endswith(".js"))
    body = "\n".join(_read_web(os.path.join("js", name)) for name in names)
    return f"{_JS_HEADER}(function () {{\n  'use strict';\n\n{body}}})();\n"


def _csp_hash(text):
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


_SENTINELS = re.compile(r"(@CSP@|/\*@CSS@\*/|/\*@JS@\*/|@DATA@)")


def render_html(payload):
    """Fills the template: CSS and JS inline (hash-pinned by the CSP), data as JSON."""
    template = _read_web("explorer.html")
    css, js = _read_web("explorer.css"), viewer_js()
    for name, text, closer in (("explorer.css", css, "</style"), ("explorer.js", js, "</script")):
        if closer in text.lower() or "<!--" in text:
            raise UserError(f"{name} must not contain {closer!r} or '<!--'")
    csp = ("default-src 'none'; "
           f"script-src {_csp_hash(js)}; style-src {_csp_hash(css)}; "
           "img-src 'none'; connect-src 'none'; font-src 'none'; object-src 'none'; "
           "worker-src 'none'; base-uri 'none'; form-action 'none'")
    pieces = {"@CSP@": csp, "/*@CSS@*/": css, "/*@JS@*/": js,
              "@DATA@": script_safe_json(payload)}
    # Split the template once on the sentinels, so text inside the data that
    # looks like a sentinel is never expanded.
    parts = _SENTINELS.split(template)
    found = sorted(part for part in parts if part in pieces)
    if found != sorted(pieces):
        raise UserError(f"explorer.html must hold each of {sorted(pieces)} once")
    return "".join(pieces.get(part, part) for part in parts)


def write_explorer(graph_dir, output, max_nodes=None, neighbours="auto"):
    """Reads GRAPH, writes the HTML file atomically; returns a small summary dict."""
    nodes, edges, communities = read_graph(graph_dir)
    payload = build_payload(nodes, edges, max_nodes=max_nodes, communities=communities,
                            neighbours=neighbours)
    if payload["n"] == 0:
        raise UserError(f"{graph_dir}/nodes.parquet has no books")
    html = render_html(payload)
    fileio.write_text(output, html)
    return {"output": output, "books": payload["n"], "edges": payload["num_edges"],
            "dropped_edges": payload["dropped_edges"], "trimmed_edges": payload["trimmed_edges"],
            "bytes": len(html.encode("utf-8"))}


def run(argv=None):
    """Parses flags and writes the explorer; returns the summary dict."""
    parser = cli.ArgumentParser(prog="python -m graph_export.explorer",
                                description=__doc__.splitlines()[0])
    parser.add_argument("--graph", required=True,
                        help="graph_export.neighbors output dir (nodes.parquet, edges.parquet, "
                             "communities.parquet)")
    parser.add_argument("--output", required=True, help="HTML file to write (local or gs://)")
    parser.add_argument("--max_nodes", type=positive_int, default=None,
                        help="embed only the N most-read books (lowest book_index); "
                             "edges to the others are dropped. Default: all books")
    parser.add_argument("--neighbours", type=positive_int, default=None,
                        help="embed at most K nearest books per book. Default: all of them up "
                             f"to {ALL_NEIGHBOURS_UP_TO:,} books, {NEIGHBOURS_BEYOND} beyond "
                             "(keeps a 1M-book page under 150 MB)")
    args, rest = config.parse_known_args(parser, argv)
    if rest:
        # No pipeline here; FileSystems options (e.g. for gs://) are the only extras.
        from apache_beam.io.filesystems import FileSystems
        from apache_beam.options.pipeline_options import PipelineOptions
        FileSystems.set_options(PipelineOptions(rest))
    summary = write_explorer(args.graph, args.output, max_nodes=args.max_nodes,
                             neighbours=args.neighbours or "auto")
    logging.info("wrote %s: %d books, %d edges, %.1f MB", summary["output"], summary["books"],
                 summary["edges"], summary["bytes"] / 1e6)
    if summary["bytes"] > LARGE_FILE_BYTES:
        logging.warning("%s is %.0f MB; browsers open it slowly. Use --max_nodes to embed "
                        "only the most-read books.", summary["output"], summary["bytes"] / 1e6)
    return summary


if __name__ == "__main__":
    main(run, "python -m graph_export.explorer")
