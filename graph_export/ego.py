"""Ego graph of one book: its k nearest books, their k nearest, ... `depth` layers out.

    python -m graph_export.ego --graph GRAPH (--title "Neuromancer" | --book_id ID) \
        [--depth 3] [--k 10] --output PREFIX

writes PREFIX.gexf, PREFIX.json (graphology) and PREFIX.png. Reads only
GRAPH/nodes.parquet and GRAPH/edges.parquet (docs/artifacts.md section 3).

The walk is breadth-first over the directed kNN edges: layer 0 is the book,
layer L+1 the not-yet-seen top-k neighbours of layer L, so depth 3 holds at
most 1 + k + k^2 + k^3 books. Every edge from a book in layers 0..depth-1 to
its top-k is kept (all of them end inside the ego graph). Titles are matched
ignoring case, accents' composition, punctuation and spacing; an unknown or
ambiguous title fails with the closest titles listed.
"""
import difflib
import logging
import math
import textwrap
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from graph_export import graph_files
from graph_export.gexf_writer import GexfWriter, token
from graph_export.json_writer import EdgeBatch, write_graphology
from pipeline_common import artifacts, cli, fileio
from pipeline_common.cli import positive_int
from pipeline_common.entrypoint import main
from pipeline_common.errors import UserError


def normalise_title(title):
    """Case-, punctuation- and spacing-insensitive form of a title."""
    text = unicodedata.normalize("NFKC", str(title or "")).casefold()
    kept = "".join(ch if not unicodedata.category(ch)[0] in "PSC" else " " for ch in text)
    return " ".join(kept.split())


def _describe(nodes, rows):
    titles = nodes.column("title").to_pylist()
    ids = nodes.column("book_id").to_pylist()
    authors = (nodes.column("authors").to_pylist() if "authors" in nodes.column_names
               else [None] * nodes.num_rows)
    lines = []
    for r in rows:
        extra = f", {authors[r]}" if authors[r] else ""
        lines.append(f"  {token(titles[r])!r} (book_id {ids[r]}{extra})")
    return "\n".join(lines)


def find_book(nodes, title=None, book_id=None, suggestions=10):
    """Row number in `nodes` of the one book with this title or id.

    Raises:
      UserError: unknown id; title matching no book (closest titles listed)
        or several books (all listed, with their ids).
    """
    if book_id is not None:
        matches = np.flatnonzero(pc.equal(nodes.column("book_id"), str(book_id))
                                 .to_numpy(zero_copy_only=False))
        if len(matches) == 0:
            raise UserError(f"no book with book_id {book_id} in the graph "
                            "(it may be excluded: see excluded.parquet)")
        return int(matches[0])
    wanted = normalise_title(title)
    if not wanted:
        raise UserError(f"--title {title!r} has no letters or digits to match")
    normalised = [normalise_title(t) for t in nodes.column("title").to_pylist()]
    matches = [i for i, t in enumerate(normalised) if t == wanted]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UserError(
            f"title {title!r} matches {len(matches)} books; pick one with --book_id:\n"
            + _describe(nodes, matches[:suggestions]))
    by_text = {}
    for i, t in enumerate(normalised):
        by_text.setdefault(t, i)
    contains = [i for t, i in by_text.items() if wanted in t][:suggestions]
    close = difflib.get_close_matches(wanted, list(by_text), n=suggestions, cutoff=0.5)
    rows = list(dict.fromkeys(contains + [by_text[t] for t in close]))[:suggestions]
    hint = ("closest titles:\n" + _describe(nodes, rows)) if rows else "no similar titles"
    raise UserError(f"no book titled {title!r}; {hint}")


def read_edges_from(edges_path, sources, k):
    """Edges (source, target, rank, cosine) of the given sources with rank <= k."""
    table = artifacts.read_parquet(edges_path, filters=[("source", "in", sorted(sources)),
                                                         ("rank", "<=", k)])
    return table.sort_by([("source", "ascending"), ("rank", "ascending")])


def max_rank(edges_path):
    """The graph's k: the largest `rank`, from the parquet statistics."""
    with artifacts.parquet_file(edges_path) as parquet:
        meta = parquet.metadata
        column = meta.schema.names.index("rank")
        best = 0
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(column).statistics
            if stats is not None and stats.has_min_max:
                best = max(best, int(stats.max))
    return best


def ego_graph(nodes, edges_path, centre_row, depth, k):
    """Breadth-first ego graph.

    Returns:
      `(layer, parent, edges)`: dicts book_index -> layer and -> BFS parent
      (None for the centre), and a pyarrow table of the kept edges.
    """
    centre = int(nodes.column("book_index")[centre_row].as_py())
    layer, parent = {centre: 0}, {centre: None}
    frontier, kept = [centre], []
    for level in range(depth):
        if not frontier:
            break
        edges = read_edges_from(edges_path, frontier, k)
        kept.append(edges)
        nxt = []
        for s, t in zip(edges.column("source").to_pylist(), edges.column("target").to_pylist()):
            if t not in layer:
                layer[t], parent[t] = level + 1, s
                nxt.append(t)
        frontier = nxt
    edges = pa.concat_tables(kept) if kept else None
    return layer, parent, edges


def radial_positions(layer, parent, centre):
    """Radial tree layout: layer L on the circle of radius L, children within the
    angular sector of their BFS parent (so each branch stays together)."""
    children = {}
    for node, p in parent.items():
        if p is not None:
            children.setdefault(p, []).append(node)
    weight = {}
    for node in sorted(layer, key=lambda b: -layer[b]):   # leaves first
        weight[node] = 1 + sum(weight[c] for c in children.get(node, []))
    pos = {centre: (0.0, 0.0)}
    sectors = {centre: (0.0, 2 * math.pi)}
    queue = [centre]
    while queue:
        node = queue.pop(0)
        lo, hi = sectors[node]
        kids = children.get(node, [])
        total = sum(weight[c] for c in kids)
        start = lo
        for kid in kids:
            # sector width proportional to the branch's size
            a0, a1 = start, start + (hi - lo) * weight[kid] / total
            start = a1
            sectors[kid] = (a0, a1)
            angle = (a0 + a1) / 2
            pos[kid] = (layer[kid] * math.cos(angle), layer[kid] * math.sin(angle))
            queue.append(kid)
    return pos


def _node_rows(nodes, members):
    index = nodes.column("book_index").to_numpy()
    order = np.argsort(index)
    rows = order[np.searchsorted(index, members, sorter=order)]
    return rows


def write_outputs(prefix, nodes, layer, parent, edges, centre, formats):
    members = sorted(layer, key=lambda b: (layer[b], b))
    sub = nodes.take(pa.array(_node_rows(nodes, np.array(members, np.int64))))
    pos = radial_positions(layer, parent, centre)
    text = graph_files.NodeText(
        sub, positions=[(round(pos[b][0] * 100, 3), round(pos[b][1] * 100, 3))
                        for b in members],
        extra={"layer": [layer[b] for b in members]}, extra_types=[("layer", "integer")])
    records = list(text.records())
    types = graph_files.edge_types(edges)
    batches = list(graph_files.edge_batches(edges))
    sources, targets, cosines = (np.concatenate([b[i] for b in batches]) for i in range(3))
    attributes = {name: (pa.concat_arrays([b[3][name] for b in batches])
                         if isinstance(batches[0][3][name], pa.Array)
                         else np.concatenate([b[3][name] for b in batches]))
                  for name, _ in types} if batches else {}
    edge_rows = list(zip(sources.tolist(), targets.tolist(),
                         attributes.get("rank", np.zeros(len(sources))).tolist(), cosines.tolist()))
    title = records[0][1]
    written = []
    if "gexf" in formats:
        path = prefix + ".gexf"
        with fileio.atomic_write(path) as handle:
            writer = GexfWriter(handle, text.types, types, directed=True,
                                description=f"ego graph of {title}")
            writer.start_nodes()
            writer.node_rows(text.gexf_rows())
            writer.start_edges()
            writer.edge_batch(sources, targets, cosines, attributes)
            writer.close()
        written.append(path)
    if "json" in formats:
        path = prefix + ".json"
        with fileio.atomic_write(path) as handle:
            write_graphology(
                handle, [text.json_rows("graphology")],
                [EdgeBatch(sources, targets, {"weight": cosines, **attributes}).graphology_rows()],
                {"name": f"ego graph of {title}"})
        written.append(path)
    if "png" in formats:
        path = prefix + ".png"
        draw_png(path, records, edge_rows, layer, pos, parent)
        written.append(path)
    return written


def draw_png(path, records, edge_rows, layer, pos, parent):
    """A readable picture: tree edges drawn, centre and layer 1 labelled."""
    import warnings

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    depth = max(layer.values())
    fig, ax = plt.subplots(figsize=(13, 13), dpi=110)
    ax.set_aspect("equal")
    ax.axis("off")
    for ring in range(1, depth + 1):
        ax.add_patch(plt.Circle((0, 0), ring, fill=False, color="#dddddd", lw=0.8, zorder=0))
    tree = [(pos[p], pos[c]) for c, p in parent.items() if p is not None]
    others = [(pos[s], pos[t]) for s, t, _, _ in edge_rows if parent.get(t) != s]
    ax.add_collection(LineCollection(others, colors="#bbbbbb", linewidths=0.3, alpha=0.35,
                                     zorder=1))
    ax.add_collection(LineCollection(tree, colors="#777777", linewidths=0.6, alpha=0.7,
                                     zorder=2))
    xs = [pos[int(r[0])][0] for r in records]
    ys = [pos[int(r[0])][1] for r in records]
    colours = [tuple(c / 255 for c in r[3]) for r in records]
    scale = [8 if layer[int(r[0])] == 3 else 28 if layer[int(r[0])] == 2 else 110
             for r in records]
    scale[0] = 400
    ax.scatter(xs, ys, s=scale, c=colours, edgecolors="white", linewidths=0.5, zorder=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # glyphs (emoji) missing from the font
        for key, label, attrs, _, _, _ in records:
            book = int(key)
            if layer[book] > 1:
                continue
            x, y = pos[book]
            text = "\n".join(textwrap.wrap(label, 26)[:3]) or key
            if layer[book] == 0:
                ax.text(0, 0, text, ha="center", va="center", fontsize=13,
                        fontweight="bold", zorder=5,
                        bbox=dict(boxstyle="round,pad=0.4", fc="#fff8dc", ec="#444444"))
                continue
            angle = math.atan2(y, x)
            lx, ly = 1.0 * math.cos(angle) * 1.25, 1.0 * math.sin(angle) * 1.25
            ha = "left" if math.cos(angle) > 0.3 else "right" if math.cos(angle) < -0.3 \
                else "center"
            ax.annotate(text, (x, y), (lx, ly), ha=ha, va="center", fontsize=9.5, zorder=5,
                        arrowprops=dict(arrowstyle="-", color="#555555", lw=0.6),
                        bbox=dict(boxstyle="round,pad=0.25", fc="white", ec="#999999",
                                  alpha=0.9))
    lim = depth + 0.6
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    counts = [sum(1 for v in layer.values() if v == d) for d in range(depth + 1)]
    ax.set_title(f"Books like “{textwrap.shorten(records[0][1], 60)}”: {len(records)} books, "
                 f"layers {' / '.join(map(str, counts))} (ring = layer, colour = community)",
                 fontsize=12)
    fig.tight_layout()
    with fileio.atomic_write(path) as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)


def build_parser():
    parser = cli.ArgumentParser(
        prog="python -m graph_export.ego",
        description="Ego graph of one book (breadth-first through its k nearest books) "
                    "-> PREFIX.gexf, PREFIX.json, PREFIX.png.")
    parser.add_argument("--graph", required=True,
                        help="GRAPH directory written by graph_export.neighbors")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--title", help="book title (case and punctuation are ignored)")
    which.add_argument("--book_id", help="Goodreads book id")
    parser.add_argument("--depth", type=positive_int, default=3, help="layers out (3)")
    parser.add_argument("--k", type=positive_int, default=10, help="neighbours per book (10)")
    parser.add_argument("--output", required=True,
                        help="path prefix: writes PREFIX.gexf, PREFIX.json, PREFIX.png")
    parser.add_argument("--formats", default="gexf,json,png",
                        help="comma-separated subset of gexf,json,png")
    return parser


def run(argv=None):
    """Builds and writes one ego graph; returns a summary dict."""
    parser = build_parser()
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    bad = sorted(set(formats) - {"gexf", "json", "png"})
    if bad or not formats:
        parser.error(f"--formats: unknown {', '.join(bad) or '(empty)'}; "
                     "choose from gexf,json,png")
    nodes_path = fileio.join(args.graph, artifacts.NODES)
    edges_path = fileio.join(args.graph, artifacts.EDGES)
    for path in (nodes_path, edges_path):
        if not fileio.exists(path):
            raise UserError(f"{path} does not exist: run graph_export.neighbors first")
    nodes = artifacts.read_parquet(nodes_path)
    index = np.sort(nodes.column("book_index").to_numpy())
    twice = index[1:][index[1:] == index[:-1]]
    if len(twice):
        raise UserError(f"{nodes_path} lists book_index {twice[0]} more than once ({len(twice)} "
                        "extra rows): it is not a graph_export.neighbors output; run it again")
    graph_k = max_rank(edges_path)
    if args.k > graph_k > 0:
        raise UserError(f"--k {args.k}: the graph has only {graph_k} neighbours per book")
    centre_row = find_book(nodes, title=args.title, book_id=args.book_id)
    layer, parent, edges = ego_graph(nodes, edges_path, centre_row, args.depth, args.k)
    stray = sorted(set(layer) - set(nodes.column("book_index").to_pylist()))
    if stray:
        raise UserError(f"{edges_path} names book_index {stray[0]}, which {nodes_path} lacks: "
                        "the two files come from different runs; run graph_export.neighbors again")
    centre = int(nodes.column("book_index")[centre_row].as_py())
    written = write_outputs(args.output, nodes, layer, parent, edges, centre, formats)
    counts = [sum(1 for v in layer.values() if v == d) for d in range(args.depth + 1)]
    logging.info("ego graph of %r: %d books (layers %s), %d edges -> %s",
                 nodes.column("title")[centre_row].as_py(), len(layer), counts,
                 edges.num_rows, ", ".join(written))
    return {"centre": centre, "num_nodes": len(layer), "layers": counts,
            "num_edges": edges.num_rows, "files": written}


if __name__ == "__main__":
    main(run, "python -m graph_export.ego")
