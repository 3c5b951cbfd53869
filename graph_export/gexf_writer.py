"""Streaming GEXF 1.3 writer: nodes and edges go out as they come, memory stays flat.

Writes what the RelaxNG schema (`gexf.rng`), networkx's `read_gexf`, Gephi and
graphology-gexf all accept: the 1.3 and viz namespaces on the root, typed
`<attributes>` declared before the nodes, `viz:color` as r/g/b attributes (not
`hex`), `viz:position` and `viz:size`, and edge `weight` as a plain double.

Any text is made safe for XML 1.0: characters XML 1.0 cannot carry at all
(control characters other than tab/newline/carriage return, lone surrogates,
U+FFFE/U+FFFF) are removed, and `& < > " '` plus tab/newline/CR are written as
entities, so a title such as ``Tom & "Jerry" <3 \\x07`` round-trips as
``Tom & "Jerry" <3``.
"""
import re

import numpy as np

from graph_export import text_columns

GEXF_NS = "http://gexf.net/1.3"
VIZ_NS = "http://gexf.net/1.3/viz"
ATTRIBUTE_TYPES = ("integer", "long", "double", "float", "boolean", "string")

_XML_FORBIDDEN = re.compile(
    "[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTR_ESCAPES = str.maketrans({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;",
    "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"})


def clean_text(value):
    """`str(value)` without the characters XML 1.0 (and strict JSON) cannot carry."""
    text = str(value)
    if text.isascii() and text.isprintable():   # fast path: nothing to remove
        return text
    return _XML_FORBIDDEN.sub("", text)


def xml_attr(value):
    """Cleaned and escaped for use inside a double-quoted XML attribute."""
    return clean_text(value).translate(_ATTR_ESCAPES)


def token(value):
    """Cleaned text with whitespace collapsed (XML Schema `token`, e.g. labels)."""
    return " ".join(clean_text(value).split())


class GexfWriter:
    """Writes one GEXF 1.3 graph to a binary handle, a batch of nodes or edges at a time.

    Call order: `start_nodes()`, `node_rows(...)` for each batch of nodes,
    `start_edges()`, `edge_batch(...)` for each batch of edges, `close()`.
    Memory depends on the batch sizes, not on the graph's size.

    Args:
      handle: binary file-like object (e.g. from `pipeline_common.fileio.atomic_write`).
      node_attributes: list of `(name, type)`; `name` is both the GEXF
        attribute id and its title (so every reader sees the same key), `type`
        one of `ATTRIBUTE_TYPES`.
      edge_attributes: the same for edges.
      directed: `defaultedgetype`; a kNN relation is not symmetric, so True.
      description, creator: `<meta>` text.
    """

    def __init__(self, handle, node_attributes=(), edge_attributes=(), directed=True,
                 description="", creator="goodreads-book-map graph_export"):
        self._handle = handle
        self._node_types = dict(node_attributes)
        self._edge_types = dict(edge_attributes)
        for name, kind in list(node_attributes) + list(edge_attributes):
            if kind not in ATTRIBUTE_TYPES:
                raise ValueError(f"attribute {name!r}: unsupported GEXF type {kind!r}")
        self._buffer = []
        self._state = "header"
        self.nodes_written = 0
        self.edges_written = 0
        edgetype = "directed" if directed else "undirected"
        self._emit('<?xml version="1.0" encoding="UTF-8"?>\n'
                   f'<gexf xmlns="{GEXF_NS}" xmlns:viz="{VIZ_NS}" version="1.3">\n'
                   f'  <meta>\n    <creator>{xml_attr(creator)}</creator>\n'
                   f'    <description>{xml_attr(description)}</description>\n  </meta>\n'
                   f'  <graph defaultedgetype="{edgetype}" idtype="string">\n')
        for cls, attrs in (("node", node_attributes), ("edge", edge_attributes)):
            if not attrs:
                continue
            self._emit(f'    <attributes class="{cls}">\n')
            for name, kind in attrs:
                self._emit(f'      <attribute id="{xml_attr(name)}" title="{xml_attr(name)}" '
                           f'type="{kind}"/>\n')
            self._emit('    </attributes>\n')

    def _emit(self, text):
        self._buffer.append(text)

    def flush(self):
        if self._buffer:
            self._handle.write("".join(self._buffer).encode("utf-8"))
            self._buffer = []

    def start_nodes(self):
        if self._state != "header":
            raise RuntimeError("start_nodes() must come first")
        self._emit("    <nodes>\n")
        self._state = "nodes"

    def node_rows(self, rows):
        """Whole `<node>` elements, one per row of an Arrow string column
        (`graph_files.NodeText.gexf_rows`), written as one buffer."""
        if self._state != "nodes":
            raise RuntimeError("node_rows() outside start_nodes()/start_edges()")
        self.flush()
        self._handle.write(text_columns.as_bytes(rows))
        self.nodes_written += len(rows)

    def start_edges(self):
        if self._state != "nodes":
            raise RuntimeError("start_edges() must follow start_nodes()")
        self._emit("    </nodes>\n    <edges>\n")
        self._state = "edges"

    def edge_batch(self, sources, targets, weights, attributes=None):
        """Edges `edges_written, edges_written + 1, ...` between integer node ids.

        `weights` are finite floats (a non-finite one raises ValueError);
        `attributes` maps a declared numeric edge attribute to one value per edge.
        """
        self.edge_rows(edge_elements(self.edges_written, sources, targets, weights,
                                     attributes, self._edge_types))

    def edge_rows(self, rows):
        """Whole `<edge>` elements (from `edge_elements`, ids counting on from
        `edges_written`), written as one buffer."""
        if self._state != "edges":
            raise RuntimeError("edge_rows() before start_edges()")
        self.flush()
        self._handle.write(text_columns.as_bytes(rows))
        self.edges_written += len(rows)

    def close(self):
        """Ends the document (adds empty node/edge lists if none were started)."""
        if self._state == "header":
            self.start_nodes()
        if self._state == "nodes":
            self.start_edges()
        if self._state != "closed":
            self._emit("    </edges>\n  </graph>\n</gexf>\n")
            self.flush()
            self._state = "closed"


def edge_elements(first_id, sources, targets, weights, attributes=None, edge_types=None):
    """`<edge>` elements with ids `first_id, first_id + 1, ...`, one per row of an
    Arrow string column, for `GexfWriter.edge_rows`.

    `weights` are finite floats (a non-finite one raises ValueError);
    `attributes` maps an edge attribute declared in `edge_types` (name -> GEXF
    type) to one value per edge: numbers, or an Arrow string column for "string".
    """
    attributes = attributes or {}
    for name in attributes:
        if (edge_types or {}).get(name) not in ("integer", "long", "double", "float", "string"):
            raise ValueError(f"edge attribute {name!r} must be declared")
    ids = np.arange(first_id, first_id + len(weights))
    parts = ['      <edge id="', text_columns.integers(ids), '" source="',
             text_columns.integers(sources), '" target="', text_columns.integers(targets),
             '" weight="',
             text_columns.finite_numbers(np.asarray(weights, np.float64), "edge weight")]
    if attributes:
        parts.append('"><attvalues>')
        for name, values in attributes.items():
            text = (text_columns.xml(values) if edge_types[name] == "string"
                    else text_columns.finite_numbers(np.asarray(values), name))
            parts += [f'<attvalue for="{xml_attr(name)}" value="', text, '"/>']
        parts.append("</attvalues></edge>\n")
    else:
        parts.append('"/>\n')
    return text_columns.concat(*parts)
