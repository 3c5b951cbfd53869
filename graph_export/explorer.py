"""Writes one self-contained HTML file to search a book and walk its neighbourhood.

    python -m graph_export.explorer --graph GRAPH --output explorer.html [--max_nodes N]

The page needs no server and no network: it is opened straight from disk
(``file://``). It holds the viewer (plain JavaScript, no library, no build step;
sources in ``graph_export/explorer_web/``) and the graph read from the
documented artifacts ``GRAPH/nodes.parquet`` and ``GRAPH/edges.parquet``.

The graph is embedded compactly: per-book text columns as JSON arrays, the
k-nearest-neighbour lists as one CSR adjacency (``offsets``, ``targets``,
``cosine``) of little-endian typed arrays in base64. The browser decodes these
into typed arrays without building any per-book objects, so a 100k-book graph
opens in about a second and only the ego graph on screen is ever laid out.

Titles and author names are data, never markup: the JSON block escapes ``<``,
``>``, ``&``, U+2028 and U+2029 (so ``</script>`` in a title cannot close it),
the viewer only writes text with ``textContent``, and a Content-Security-Policy
allows nothing but the page's own (hash-pinned) script and style, no network.
"""
import base64
import hashlib
import json
import logging
import os
import re

import numpy as np

from pipeline_common import artifacts, cli, config, fileio
from pipeline_common.arrays import sorted_unique
from pipeline_common.cli import positive_int
from pipeline_common.entrypoint import main

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "explorer_web")
NODE_COLUMNS = ("book_index", "title")
EDGE_COLUMNS = ("source", "target", "rank", "cosine")
OPTIONAL_TEXT = ("book_id", "authors", "genre")
OPTIONAL_NUMBERS = ("ratings_count", "average_rating", "community")
FORMAT_VERSION = 1
LARGE_FILE_BYTES = 100_000_000  # ~350k books at k=20: past this, suggest --max_nodes


class ExplorerError(ValueError):
    """Graph files that are missing or do not follow docs/artifacts.md section 3."""


def _read_table(path, columns=None):
    if not fileio.exists(path):
        raise ExplorerError(f"{path} not found (expected graph_export.neighbors output)")
    if columns is not None:
        names = artifacts.read_parquet_schema(path).names
        columns = [name for name in columns if name in names]
    return artifacts.read_parquet(path, columns=columns)


def _require(table, names, path):
    missing = [name for name in names if name not in table.column_names]
    if missing:
        raise ExplorerError(f"{path} lacks column(s) {', '.join(missing)}")


def read_graph(graph_dir):
    """Reads nodes.parquet and edges.parquet into (nodes dict, edges dict) of numpy/lists."""
    nodes_path = fileio.join(graph_dir, artifacts.NODES)
    edges_path = fileio.join(graph_dir, artifacts.EDGES)
    wanted = NODE_COLUMNS + OPTIONAL_TEXT + OPTIONAL_NUMBERS
    nodes_table = _read_table(nodes_path, columns=list(wanted))
    _require(nodes_table, NODE_COLUMNS, nodes_path)
    edges_table = _read_table(edges_path, columns=list(EDGE_COLUMNS))
    _require(edges_table, EDGE_COLUMNS, edges_path)
    nodes = {name: nodes_table.column(name).to_pylist()
             for name in nodes_table.column_names if name not in ("book_index",)}
    nodes["book_index"] = nodes_table.column("book_index").to_numpy(
        zero_copy_only=False).astype(np.int64)
    edges = {name: edges_table.column(name).to_numpy(zero_copy_only=False)
             for name in EDGE_COLUMNS}
    return nodes, edges


def select_nodes(book_index, max_nodes):
    """Row positions of the books to keep, in book_index order.

    Book indices are ordered by interaction count (docs/artifacts.md), so the
    first `max_nodes` are the most-read books.
    """
    order = np.argsort(book_index, kind="stable")
    if len(sorted_unique(book_index)) != len(book_index):
        raise ExplorerError("nodes.parquet has duplicate book_index values")
    if max_nodes is not None:
        order = order[:max_nodes]
    return order


def build_adjacency(kept_index, edges):
    """CSR adjacency over kept rows: offsets[n+1], targets (row numbers), cosine.

    Each book's list is in rank order; edges to or from books not kept are dropped.
    Returns (offsets, targets, cosine, dropped_edge_count).
    """
    n = len(kept_index)
    source = np.asarray(edges["source"], dtype=np.int64)
    target = np.asarray(edges["target"], dtype=np.int64)
    src_row = np.searchsorted(kept_index, source)
    dst_row = np.searchsorted(kept_index, target)
    src_ok = (src_row < n) & (kept_index[np.minimum(src_row, n - 1)] == source)
    dst_ok = (dst_row < n) & (kept_index[np.minimum(dst_row, n - 1)] == target)
    keep = src_ok & dst_ok & (source != target)
    src_row, dst_row = src_row[keep], dst_row[keep]
    rank = np.asarray(edges["rank"], dtype=np.int64)[keep]
    cosine = np.asarray(edges["cosine"], dtype=np.float32)[keep]
    order = np.lexsort((rank, src_row))
    src_row, dst_row, cosine = src_row[order], dst_row[order], cosine[order]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src_row, minlength=n), out=offsets[1:])
    return offsets, dst_row, cosine, int((~keep).sum())


def _b64(array, dtype):
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def _text_list(values):
    return ["" if value is None else str(value) for value in values]


def _number_list(values, digits=None):
    out = []
    for value in values:
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            out.append(None)
        elif digits is None:
            out.append(int(value))
        else:
            out.append(round(float(value), digits))
    return out


def build_payload(nodes, edges, max_nodes=None):
    """The JSON-able dict the viewer reads (FORMAT_VERSION 1)."""
    rows = select_nodes(nodes["book_index"], max_nodes)
    kept_index = nodes["book_index"][rows]
    if len(kept_index) and (kept_index.min() < 0 or kept_index.max() >= 2**31):
        raise ExplorerError("book_index values must be in 0..2^31-1")
    offsets, targets, cosine, dropped = build_adjacency(kept_index, edges)
    pick = rows.tolist()
    payload = {
        "version": FORMAT_VERSION,
        "n": int(len(kept_index)),
        "num_edges": int(len(targets)),
        "total_books": int(len(nodes["book_index"])),
        "dropped_edges": dropped,
        "book_index": _b64(kept_index, "<i4"),
        "offsets": _b64(offsets, "<i4"),
        "targets": _b64(targets, "<i4"),
        "cosine": _b64(cosine, "<f4"),
        "title": _text_list(nodes["title"][i] for i in pick),
    }
    for name in ("book_id", "authors"):
        if name in nodes:
            payload[name] = _text_list(nodes[name][i] for i in pick)
    if "genre" in nodes:
        genres = [nodes["genre"][i] for i in pick]
        names = sorted({g for g in genres if g})
        lookup = {g: code for code, g in enumerate(names)}
        payload["genre_names"] = names
        payload["genre"] = [lookup.get(g, -1) if g else -1 for g in genres]
    for name, digits in (("ratings_count", None), ("average_rating", 2), ("community", None)):
        if name in nodes:
            payload[name] = _number_list((nodes[name][i] for i in pick), digits)
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


_JS_HEADER = """// Book neighbourhood explorer: plain JavaScript, no library, no network.
// Reads the graph embedded by graph_export/explorer.py (a JSON block holding
// per-book columns and a base64 CSR adjacency of the k-nearest-neighbour lists)
// and shows the ego graph of one book at a time. Every string from the data is
// written with textContent / SVG text nodes, never parsed as markup.
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
            raise ExplorerError(f"{name} must not contain {closer!r} or '<!--'")
    csp = ("default-src 'none'; "
           f"script-src {_csp_hash(js)}; style-src {_csp_hash(css)}; "
           "img-src 'none'; connect-src 'none'; font-src 'none'; object-src 'none'; "
           "base-uri 'none'; form-action 'none'")
    pieces = {"@CSP@": csp, "/*@CSS@*/": css, "/*@JS@*/": js,
              "@DATA@": script_safe_json(payload)}
    # Split the template once on the sentinels, so text inside the data that
    # looks like a sentinel is never expanded.
    parts = _SENTINELS.split(template)
    found = sorted(part for part in parts if part in pieces)
    if found != sorted(pieces):
        raise ExplorerError(f"explorer.html must hold each of {sorted(pieces)} once")
    return "".join(pieces.get(part, part) for part in parts)


def write_explorer(graph_dir, output, max_nodes=None):
    """Reads GRAPH, writes the HTML file atomically; returns a small summary dict."""
    nodes, edges = read_graph(graph_dir)
    payload = build_payload(nodes, edges, max_nodes=max_nodes)
    if payload["n"] == 0:
        raise ExplorerError(f"{graph_dir}/nodes.parquet has no books")
    html = render_html(payload)
    fileio.write_text(output, html)
    return {"output": output, "books": payload["n"], "edges": payload["num_edges"],
            "dropped_edges": payload["dropped_edges"], "bytes": len(html.encode("utf-8"))}


def run(argv=None):
    """Parses flags and writes the explorer; returns the summary dict."""
    parser = cli.ArgumentParser(prog="python -m graph_export.explorer",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--graph", required=True,
                        help="graph_export.neighbors output dir (nodes.parquet, edges.parquet)")
    parser.add_argument("--output", required=True, help="HTML file to write (local or gs://)")
    parser.add_argument("--max_nodes", type=positive_int, default=None,
                        help="embed only the N most-read books (lowest book_index); "
                             "edges to the others are dropped. Default: all books")
    args, rest = config.parse_known_args(parser, argv)
    if rest:
        # No pipeline here; FileSystems options (e.g. for gs://) are the only extras.
        from apache_beam.io.filesystems import FileSystems
        from apache_beam.options.pipeline_options import PipelineOptions
        FileSystems.set_options(PipelineOptions(rest))
    try:
        summary = write_explorer(args.graph, args.output, max_nodes=args.max_nodes)
    except (ExplorerError, artifacts.ArtifactError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    logging.info("wrote %s: %d books, %d edges, %.1f MB", summary["output"], summary["books"],
                 summary["edges"], summary["bytes"] / 1e6)
    if summary["bytes"] > LARGE_FILE_BYTES:
        logging.warning("%s is %.0f MB; browsers open it slowly. Use --max_nodes to embed "
                        "only the most-read books.", summary["output"], summary["bytes"] / 1e6)
    return summary


if __name__ == "__main__":
    main(run, "python -m graph_export.explorer")
