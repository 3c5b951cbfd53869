"""Graph rows -> GEXF and JSON files, cut to a size their viewers open.

The one place that turns `nodes.parquet` rows into GEXF/JSON node text
(`NodeText`, a whole column at a time; used by `neighbors` and `ego`), plus the
two ways a big graph is made viewable:

- the cut (`--max_graph_nodes`, default 100,000): `graph.gexf` / `graph.json`
  hold the most-read books (by `num_interactions`, else `ratings_count`, else
  in-degree; ties to the lower book_index) and the edges among them. Gephi
  desktop struggles above ~100k nodes / ~1M edges, sigma.js viewers above
  ~50-90k nodes; at 100k books and k=10 the files are ~160 MB (GEXF) and
  ~95 MB (graphology JSON). The cut is written in the GEXF description, the
  JSON graph attributes and summary.json;
- per-community pieces (`--split_by community`): whole communities, largest
  first, packed into files of at most `max_nodes` books with the edges inside
  each file; a community bigger than that is cut to its most-read books.
"""
import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from graph_export import gexf_writer, layout, text_columns
from graph_export.gexf_writer import GexfWriter
from graph_export.json_writer import EdgeBatch, write_graphology, write_nodelink
from pipeline_common import artifacts, fileio

NODE_TYPES = {"book_id": "string", "authors": "string", "ratings_count": "integer",
              "average_rating": "double", "genre": "string",
              "num_interactions": "long", "in_degree": "integer",
              "community": "string", "community_name": "string",
              "region": "string", "region_name": "string"}
# Edge attributes besides the weight (cosine); the reasons only when edges.parquet has them.
EDGE_TYPES = {"rank": "integer", "co_readers": "long", "shared_authors": "integer",
              "shared_shelves": "string"}
EDGE_BATCH = 100_000
POPULARITY_COLUMNS = ("num_interactions", "ratings_count", "in_degree")


def edge_types(edges):
    """GEXF `(name, type)` of the edge attributes present in the edges table."""
    names = edges.column_names if hasattr(edges, "column_names") else edges
    return [(n, t) for n, t in EDGE_TYPES.items() if n in names]


def node_types(nodes, extra=()):
    """GEXF `(name, type)` of the node attributes present in `nodes`, then `extra`."""
    return [(n, t) for n, t in NODE_TYPES.items() if n in nodes.column_names] + list(extra)


def popularity(nodes, columns=POPULARITY_COLUMNS):
    """(column name, float64 values) of the first popularity column present (None -> 0)."""
    name = next(c for c in columns if c in nodes.column_names)
    values = nodes.column(name).to_numpy(zero_copy_only=False)
    return name, np.array([0 if v is None or v != v else v for v in values], np.float64)


class NodeText:
    """The text of every node of a nodes table, made once for all the files written.

    Colour = community (the same colour for a community in every file), size =
    log of ratings_count (in-degree without a catalogue), position = the map's
    x, y unless `positions` (`[n, 2]`) is given; `extra` adds attribute columns
    (name -> values) declared as `extra_types` (`[(name, type)]`).
    """

    def __init__(self, nodes, positions=None, extra=None, extra_types=()):
        self.types = node_types(nodes, extra_types)
        self.count = nodes.num_rows
        communities = nodes.column("community").to_numpy()
        colours = layout.community_colours(communities)
        self.colours = colours[communities]
        self.hex = hex_colours(colours).take(communities)
        self.sizes = layout.node_sizes(popularity(nodes, ("ratings_count", "in_degree"))[1])
        self.keys = nodes.column("book_index").combine_chunks().cast(pa.string())
        titles = nodes.column("title").combine_chunks()
        self.labels = pc.if_else(pc.is_null(titles), self.keys, text_columns.collapsed(titles))
        if positions is None:
            positions = np.stack([nodes.column("x").to_numpy(), nodes.column("y").to_numpy()],
                                 axis=1) if self.count else np.zeros((0, 2))
        self.positions = np.asarray(positions, np.float64).reshape(-1, 2)
        values = {name: nodes.column(name).combine_chunks()
                  for name, _ in self.types if name in nodes.column_names}
        for name in ("community", "region"):
            if name in values:
                values[name] = values[name].cast(pa.string())
        for name, column in (extra or {}).items():
            values[name] = pa.array(column)
        self.values = values

    def records(self):
        """Per node `(key, label, attributes, colour, position, size)` as Python values."""
        columns = {name: column.to_pylist() for name, column in self.values.items()}
        for i, (key, label) in enumerate(zip(self.keys.to_pylist(), self.labels.to_pylist())):
            yield (key, label, {name: column[i] for name, column in columns.items()},
                   tuple(int(c) for c in self.colours[i]), tuple(self.positions[i]),
                   float(self.sizes[i]))

    def _numbers(self, which):
        column = {"x": self.positions[:, 0], "y": self.positions[:, 1], "size": self.sizes}[which]
        return text_columns.finite_numbers(pa.array(column, pa.float64()), f"node {which}")

    def gexf_rows(self):
        """One `<node>` element per node, each line ending in a newline."""
        kinds = dict(self.types)
        attvalues = []
        for name, column in self.values.items():
            text = (text_columns.xml(column) if kinds[name] == "string"
                    else text_columns.numbers(column, name))
            attvalues.append(text_columns.optional(
                text, f'<attvalue for="{gexf_writer.xml_attr(name)}" value="', '"/>'))
        inner = text_columns.concat(*attvalues) if attvalues else pa.array([""] * self.count)
        block = pc.if_else(pc.equal(inner, ""), "",
                           text_columns.concat("<attvalues>", inner, "</attvalues>"))
        r, g, b = (text_columns.integers(self.colours[:, i]) for i in range(3))
        return text_columns.concat(
            '      <node id="', text_columns.xml(self.keys), '" label="',
            text_columns.xml(self.labels), '">', block, '<viz:color r="', r, '" g="', g,
            '" b="', b, '"/><viz:position x="', self._numbers("x"), '" y="', self._numbers("y"),
            '"/><viz:size value="', self._numbers("size"), '"/></node>\n')

    def json_rows(self, style):
        """One JSON object per node: graphology's `{"key", "attributes"}` or node-link's."""
        fields = [("label", text_columns.json_string(self.labels)),
                  ("x", self._numbers("x")), ("y", self._numbers("y")),
                  ("size", self._numbers("size")), ("color", text_columns.json_string(self.hex))]
        kinds = dict(self.types)
        for name, column in self.values.items():
            text = (text_columns.json_string(column) if kinds[name] == "string"
                    else text_columns.numbers(column, name))
            fields.append((name, pc.fill_null(text, "null")))
        parts = []
        for i, (name, text) in enumerate(fields):
            parts += [("," if i else "") + json.dumps(name) + ":", text]
        key = text_columns.json_string(self.keys)
        if style == "graphology":
            return text_columns.concat('{"key":', key, ',"attributes":{', *parts, "}}")
        return text_columns.concat("{", *parts, ',"id":', key, "}")


def hex_colours(colours):
    """`#rrggbb` text of `[n, 3]` integer colours (0..255), as an Arrow string column."""
    digits = pa.array([f"{i:02x}" for i in range(256)])
    return text_columns.concat("#", *(digits.take(pa.array(np.asarray(colours)[:, i]))
                                      for i in range(3)))


# ---------------------------------------------------------------- which books go in a file

def membership(book_index, rows=None):
    """Bool lookup by book_index: True for the books at `rows` (None: all)."""
    book_index = np.asarray(book_index)
    lookup = np.zeros(int(book_index.max()) + 1 if len(book_index) else 0, bool)
    lookup[book_index if rows is None else book_index[rows]] = True
    return lookup


def most_read(nodes, max_nodes):
    """Row numbers (ascending) of the `max_nodes` most-read books, and the column used."""
    name, pop = popularity(nodes)
    if nodes.num_rows <= max_nodes:
        return np.arange(nodes.num_rows), name
    order = np.lexsort((nodes.column("book_index").to_numpy(), -pop))
    return np.sort(order[:max_nodes]), name


def cut_text(kept, total, by, max_nodes):
    """The sentence stating a cut, for file descriptions and summary.json."""
    if kept == total:
        return f"all {total} books"
    return (f"the {kept} most-read of {total} books (by {by}; --max_graph_nodes "
            f"{max_nodes}) and the edges among them; edges.parquet and nodes.parquet "
            "hold every book")


def community_pieces(communities, pop, book_index, max_nodes):
    """Piece number per node (-1: left out): whole communities, largest first,
    packed into pieces of at most `max_nodes`; a larger community is a piece of
    its own, cut to its `max_nodes` most-read books."""
    communities = np.asarray(communities)
    sizes = np.bincount(communities) if len(communities) else np.zeros(0, np.int64)
    piece_of_community = np.empty(len(sizes), np.int64)
    piece, filled = -1, max_nodes
    for c, size in enumerate(sizes.tolist()):   # community ids are by size, 0 largest
        if filled + min(size, max_nodes) > max_nodes:
            piece, filled = piece + 1, 0
        piece_of_community[c] = piece
        filled += min(size, max_nodes)
    pieces = piece_of_community[communities]
    for c in np.flatnonzero(sizes > max_nodes):
        members = np.flatnonzero(communities == c)
        order = np.lexsort((book_index[members], -pop[members]))
        pieces[members[order[max_nodes:]]] = -1
    return pieces


# ---------------------------------------------------------------- streaming writers

def edge_batches(edges, keep=None):
    """`(sources, targets, cosines, attributes)` of the edges table, at most 100k
    edges at a time, only edges with both ends in `keep` (a bool lookup by
    book_index) if given; `attributes` maps each `edge_types` name to its values
    (numpy numbers, or an Arrow string column)."""
    names = [n for n, _ in edge_types(edges)]
    for batch in edges.to_batches(max_chunksize=EDGE_BATCH):
        sources, targets = batch.column("source").to_numpy(), batch.column("target").to_numpy()
        inside = None if keep is None else keep[sources] & keep[targets]
        def take(column):
            if pa.types.is_string(column.type):
                return column if inside is None else column.filter(pa.array(inside))
            values = column.to_numpy(zero_copy_only=False)
            return values if inside is None else values[inside]
        cosines = np.round(take(batch.column("cosine")).astype(np.float64), 6)
        yield (take(batch.column("source")), take(batch.column("target")), cosines,
               {name: take(batch.column(name)) for name in names})


# The graph files and the edge text each needs: graph.json is graphology's
# format, graph.nodelink.json d3's.
FILE_STYLES = {artifacts.GRAPH_GEXF: "gexf", artifacts.GRAPH_JSON: "graphology",
               artifacts.GRAPH_NODELINK: "nodelink"}


def edge_rows(edges, keep, style):
    """The edges (a table, as `edge_batches`) among `keep` (None: all) as
    text for one file style ("gexf", "graphology" or "nodelink"): an Arrow
    string column per batch, GEXF ids counting from 0."""
    written = 0
    types = dict(edge_types(edges))
    for sources, targets, cosines, attributes in edge_batches(edges, keep):
        if style == "gexf":
            rows = gexf_writer.edge_elements(written, sources, targets, cosines,
                                             attributes, types)
        else:
            batch = EdgeBatch(sources, targets, {"weight": cosines, **attributes})
            rows = batch.graphology_rows() if style == "graphology" else batch.nodelink_rows()
        written += len(rows)
        yield rows


def write_graph_file(path, style, text, edges, header, types=(("rank", "integer"),)):
    """Writes one graph file of `style` ("gexf", "graphology", "nodelink"): the
    nodes of `text` (a `NodeText`), then `edges` (`edge_rows` of that style, or
    the same already made). `header` is the GEXF description or the JSON graph
    attributes; `types` the edges' attributes (`edge_types`). Returns the number
    of edges written.
    """
    with fileio.atomic_write(path) as handle:
        if style == "gexf":
            writer = GexfWriter(handle, text.types, list(types), directed=True,
                                description=header)
            writer.start_nodes()
            writer.node_rows(text.gexf_rows())
            writer.start_edges()
            for rows in edges:
                writer.edge_rows(rows)
            writer.close()
            return writer.edges_written
        write = write_graphology if style == "graphology" else write_nodelink
        return write(handle, [text.json_rows(style)], edges, header)[1]


def write_community_pieces(directory, nodes, edges, max_nodes, description):
    """`directory/part-NNNN.gexf`, one per piece (see `community_pieces`), written
    side by side from one pass over the edges table.
    Returns one dict per file."""
    book_index = nodes.column("book_index").to_numpy()
    communities = nodes.column("community").to_numpy()
    pieces = community_pieces(communities, popularity(nodes)[1], book_index, max_nodes)
    piece_lookup = np.full(int(book_index.max()) + 1 if len(book_index) else 0, -1, np.int64)
    piece_lookup[book_index] = pieces
    count = int(pieces.max()) + 1 if len(pieces) else 0
    fileio.makedirs(directory)
    files, writers = [], []
    with contextlib.ExitStack() as stack:
        for p in range(count):
            rows = np.flatnonzero(pieces == p)
            sub = nodes.take(rows)
            first, last = int(communities[rows].min()), int(communities[rows].max())
            which = f"community {first}" if first == last else f"communities {first}-{last}"
            path = fileio.join(directory, f"part-{p:04d}.gexf")
            handle = stack.enter_context(fileio.atomic_write(path))
            writer = GexfWriter(handle, node_types(nodes), edge_types(edges), directed=True,
                                description=f"{description}; this file: {which}, "
                                            f"{len(rows)} books and the edges among them")
            writer.start_nodes()
            writer.node_rows(NodeText(sub).gexf_rows())
            writer.start_edges()
            writers.append(writer)
            files.append({"file": f"part-{p:04d}.gexf", "communities": [first, last],
                          "num_nodes": len(rows)})
        for sources, targets, cosines, attributes in edge_batches(edges):
            sp, tp = piece_lookup[sources], piece_lookup[targets]
            inside = np.flatnonzero((sp == tp) & (sp >= 0))
            order = inside[np.argsort(sp[inside], kind="stable")]
            bounds = np.searchsorted(sp[order], np.arange(count + 1))
            for p in np.flatnonzero(np.diff(bounds)):
                rows = order[bounds[p]:bounds[p + 1]]
                writers[p].edge_batch(sources[rows], targets[rows], cosines[rows],
                                      {name: (values.take(pa.array(rows))
                                              if isinstance(values, pa.Array) else values[rows])
                                       for name, values in attributes.items()})
        for writer, info in zip(writers, files):
            writer.close()
            info["num_edges"] = writer.edges_written
    return files


# ---------------------------------------------------------------- the neighbours job's files

def graph_file_styles(formats):
    """(file name, text style) of each graph file that `formats` asks for."""
    names = {"gexf": [artifacts.GRAPH_GEXF],
             "json": [artifacts.GRAPH_JSON, artifacts.GRAPH_NODELINK]}
    return [(name, FILE_STYLES[name]) for f in formats for name in names[f]]


class GraphFiles:
    """graph.gexf / graph.json / graph.nodelink.json, cut to --max_graph_nodes.

    The edge text does not depend on the map, so `start_edge_text` makes it on
    a background thread while the launcher computes communities and layout
    (single-threaded), and `write` only adds the nodes: at 100k books the three
    files then take ~1 s after the layout instead of ~2.5 s. Held in memory:
    ~300 bytes per edge for the three files, so only up to
    `PRERENDER_MAX_EDGES` edges; above that the text is made while writing.
    """

    PRERENDER_MAX_EDGES = 2_000_000

    def __init__(self, out, nodes, edges, args):
        self.out, self.edges, self.args = out, edges, args
        self.rows, self.by = most_read(nodes, args.max_graph_nodes)
        book_index = nodes.column("book_index").to_numpy()
        self.keep = (None if len(self.rows) == nodes.num_rows
                     else membership(book_index, self.rows))
        self.styles = graph_file_styles(args.formats)
        if self.keep is None:
            self.num_edges = edges.num_rows
        else:
            self.num_edges = int(np.count_nonzero(
                self.keep[edges.column("source").to_numpy()]
                & self.keep[edges.column("target").to_numpy()]))
        self.cut = cut_text(len(self.rows), nodes.num_rows, self.by,
                                        args.max_graph_nodes)
        self._pending = None
        self.edge_text_seconds = None

    def start_edge_text(self, pool):
        """Makes every file's edge text on `pool` (if small enough to hold)."""
        if self.styles and self.num_edges <= self.PRERENDER_MAX_EDGES:
            self._pending = pool.submit(self._edge_text)

    def _edge_text(self):
        started = time.time()
        text = {style: list(edge_rows(self.edges, self.keep, style))
                for _, style in self.styles}
        self.edge_text_seconds = round(time.time() - started, 3)
        return text

    def write(self, nodes):
        """Writes the files (one thread each; Arrow's kernels and the writes
        release the GIL) and the community pieces. Returns `(files, summary fields)`."""
        args = self.args
        description = (f"Goodreads books: each book -> its {args.k} nearest books by cosine "
                       "of the model's book embeddings")
        info = {"graph_file_nodes": len(self.rows), "graph_file_cut": self.cut,
                "max_graph_nodes": args.max_graph_nodes}
        made = self._pending.result() if self._pending else {}
        if self.edge_text_seconds is not None:
            info["edge_text_seconds"] = self.edge_text_seconds
        files = []
        if self.styles:
            kept = nodes if len(self.rows) == nodes.num_rows else nodes.take(self.rows)
            text = NodeText(kept)
            headers = {"gexf": f"{description}. This file: {self.cut}"}
            headers["graphology"] = headers["nodelink"] = {
                "name": "Goodreads book neighbours", "description": description,
                "cut": self.cut, "num_books": nodes.num_rows, "num_books_in_file": len(self.rows)}
            with ThreadPoolExecutor(len(self.styles)) as pool:
                written = [pool.submit(
                    write_graph_file, fileio.join(self.out, name), style, text,
                    made[style] if style in made
                    else edge_rows(self.edges, self.keep, style),
                    headers[style], edge_types(self.edges)) for name, style in self.styles]
                info["graph_file_edges"] = [w.result() for w in written][0]
            files = [name for name, _ in self.styles]
        if args.split_by == "community":
            pieces = write_community_pieces(
                fileio.join(self.out, "communities"), nodes, self.edges,
                args.max_graph_nodes, description)
            info["community_files"] = pieces
            files += [f"communities/{p['file']}" for p in pieces]
        return files, info
