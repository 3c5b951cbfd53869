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
import math
import re

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


def _number(value):
    if isinstance(value, (bool,)):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"non-finite number {value!r} cannot be written to GEXF")
    return repr(value)


class GexfWriter:
    """Writes one GEXF 1.3 graph to a binary handle, node by node, edge by edge.

    Call order: `start_nodes()`, `node(...)` for each node, `start_edges()`,
    `edge(...)` for each edge, `close()`. Output is buffered in batches of
    `flush_every` elements, so memory does not depend on the graph size.

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
                 description="", creator="goodreads-book-map graph_export",
                 flush_every=5000):
        self._handle = handle
        self._node_types = dict(node_attributes)
        self._edge_types = dict(edge_attributes)
        for name, kind in list(node_attributes) + list(edge_attributes):
            if kind not in ATTRIBUTE_TYPES:
                raise ValueError(f"attribute {name!r}: unsupported GEXF type {kind!r}")
        self._buffer = []
        self._flush_every = flush_every
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
        if len(self._buffer) >= self._flush_every:
            self.flush()

    def flush(self):
        if self._buffer:
            self._handle.write("".join(self._buffer).encode("utf-8"))
            self._buffer = []

    def _attvalues(self, values, types):
        parts = []
        for name, value in values.items():
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                continue  # missing value: no attvalue at all
            kind = types.get(name)
            if kind is None:
                raise KeyError(f"attribute {name!r} was not declared")
            text = xml_attr(value) if kind == "string" else _number(value)
            parts.append(f'<attvalue for="{xml_attr(name)}" value="{text}"/>')
        return f"<attvalues>{''.join(parts)}</attvalues>" if parts else ""

    def start_nodes(self):
        if self._state != "header":
            raise RuntimeError("start_nodes() must come first")
        self._emit("    <nodes>\n")
        self._state = "nodes"

    def node(self, node_id, label=None, attributes=None, color=None, position=None,
             size=None):
        """One node. `color` (r, g, b) 0..255, `position` (x, y), `size` >= 0."""
        if self._state != "nodes":
            raise RuntimeError("node() outside start_nodes()/start_edges()")
        text = f'      <node id="{xml_attr(node_id)}"'
        if label is not None:
            text += f' label="{xml_attr(token(label))}"'
        text += ">" + self._attvalues(attributes or {}, self._node_types)
        if color is not None:
            r, g, b = (int(c) for c in color)
            text += f'<viz:color r="{r}" g="{g}" b="{b}"/>'
        if position is not None:
            text += f'<viz:position x="{_number(position[0])}" y="{_number(position[1])}"/>'
        if size is not None:
            text += f'<viz:size value="{_number(max(0.0, float(size)))}"/>'
        self._emit(text + "</node>\n")
        self.nodes_written += 1

    def start_edges(self):
        if self._state != "nodes":
            raise RuntimeError("start_edges() must follow start_nodes()")
        self._emit("    </nodes>\n    <edges>\n")
        self._state = "edges"

    def edge(self, edge_id, source, target, weight=None, attributes=None):
        if self._state != "edges":
            raise RuntimeError("edge() before start_edges()")
        text = (f'      <edge id="{xml_attr(edge_id)}" source="{xml_attr(source)}" '
                f'target="{xml_attr(target)}"')
        if weight is not None:
            text += f' weight="{_number(weight)}"'
        att = self._attvalues(attributes or {}, self._edge_types)
        self._emit(text + (f">{att}</edge>\n" if att else "/>\n"))
        self.edges_written += 1

    def edge_batch(self, first_id, sources, targets, weights, attributes=None):
        """Many edges with integer ids/endpoints, float weights and numeric attributes.

        The fast path for big graphs (no text to escape): edge ids are
        `first_id, first_id + 1, ...`; `attributes` maps a declared numeric
        attribute to one value per edge.
        """
        if self._state != "edges":
            raise RuntimeError("edge_batch() before start_edges()")
        attributes = attributes or {}
        for name in attributes:
            if self._edge_types.get(name) not in ("integer", "long", "double", "float"):
                raise ValueError(f"edge_batch: attribute {name!r} must be declared numeric")
        names = list(attributes)
        att = "".join(f'<attvalue for="{xml_attr(n)}" value="%r"/>' for n in names)
        if att:
            template = ('      <edge id="%d" source="%d" target="%d" weight="%r">'
                        f"<attvalues>{att}</attvalues></edge>\n")
        else:
            template = '      <edge id="%d" source="%d" target="%d" weight="%r"/>\n'
        weights = [float(w) for w in weights]
        if not all(math.isfinite(w) for w in weights):
            raise ValueError("non-finite edge weight cannot be written to GEXF")
        ids = range(first_id, first_id + len(weights))
        columns = [attributes[n] for n in names]
        self.flush()
        self._handle.write("".join(
            template % row for row in zip(ids, sources, targets, weights, *columns)
        ).encode("utf-8"))
        self.edges_written += len(weights)

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
