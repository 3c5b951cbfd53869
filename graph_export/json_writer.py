"""Streaming JSON graph writers: graphology's serialisation format and d3 node-link.

graphology format (what `graph.import(...)`, sigma.js and Gephi Lite load)::

    {"attributes": {...},
     "options": {"type": "directed", "multi": false, "allowSelfLoops": false},
     "nodes": [{"key": "0", "attributes": {"label": ..., "x": ..., "y": ...}}, ...],
     "edges": [{"source": "0", "target": "7", "attributes": {"weight": 0.93}}, ...]}

node-link (d3-force, `networkx.node_link_graph(data, edges="links")`)::

    {"directed": true, "multigraph": false, "graph": {...},
     "nodes": [{"id": "0", ...}], "links": [{"source": "0", "target": "7", ...}]}

Both are written element by element, so memory does not grow with the graph.
Strings are cleaned the same way as in the GEXF file (`gexf_writer.clean_text`)
so all formats carry identical labels; non-finite numbers and None become null.
"""
import json
import math

from graph_export.gexf_writer import clean_text


class EdgeBatch:
    """Many numeric edges at once (the fast path for big graphs).

    Args:
      sources, targets: integer node keys, one per edge.
      columns: attribute name -> list of numbers (finite floats or ints).
    """

    def __init__(self, sources, targets, columns):
        self.sources, self.targets, self.columns = sources, targets, columns

    def format(self, template_head, template_tail):
        names = list(self.columns)
        attrs = ",".join(f"{json.dumps(n)}:%r" for n in names)
        template = template_head + attrs + template_tail
        for column in self.columns.values():
            if any(isinstance(v, float) and not math.isfinite(v) for v in column):
                raise ValueError("non-finite edge attribute")
        return [template % row for row in zip(self.sources, self.targets,
                                               *self.columns.values())]


def _clean(value):
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {clean_text(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _dumps(value):
    return json.dumps(_clean(value), ensure_ascii=False, allow_nan=False,
                      separators=(",", ":"))


class _Stream:
    """Buffers text and writes it out as UTF-8 once about `flush_chars` are pending."""

    def __init__(self, handle, flush_chars=1 << 20):
        self.handle, self.buffer, self.pending, self.flush_chars = handle, [], 0, flush_chars

    def write(self, text):
        self.buffer.append(text)
        self.pending += len(text)
        if self.pending >= self.flush_chars:
            self.flush()

    def flush(self):
        if self.buffer:
            self.handle.write("".join(self.buffer).encode("utf-8"))
            self.buffer, self.pending = [], 0


def _write_list(stream, items, batch_templates=None):
    count = 0
    for item in items:
        if isinstance(item, EdgeBatch):
            rows = item.format(*batch_templates)
            if rows:
                stream.write(("," if count else "") + "\n" + ",\n".join(rows))
                count += len(rows)
            continue
        stream.write(("," if count else "") + "\n" + _dumps(item))
        count += 1
    return count


def _edge_items(edges, make):
    for item in edges:
        yield item if isinstance(item, EdgeBatch) else make(*item)


def write_graphology(handle, nodes, edges, attributes=None, directed=True):
    """Writes graphology's serialised graph.

    Args:
      handle: binary file-like object.
      nodes: iterable of `(key, attributes_dict)`.
      edges: iterable of `(source, target, attributes_dict)` and/or `EdgeBatch`es.
      attributes: graph attributes (name, description, ...).
      directed: graph type option.

    Returns:
      `(nodes_written, edges_written)`.
    """
    stream = _Stream(handle)
    options = {"type": "directed" if directed else "undirected", "multi": False,
               "allowSelfLoops": False}
    stream.write('{"attributes":' + _dumps(attributes or {}) + ',"options":'
                 + _dumps(options) + ',"nodes":[')
    n = _write_list(stream, ({"key": str(key), "attributes": attrs} for key, attrs in nodes))
    stream.write('\n],"edges":[')
    e = _write_list(stream, _edge_items(
        edges, lambda s, t, attrs: {"source": str(s), "target": str(t), "attributes": attrs}),
        ('{"source":"%d","target":"%d","attributes":{', "}}"))
    stream.write("\n]}\n")
    stream.flush()
    return n, e


def write_nodelink(handle, nodes, edges, attributes=None, directed=True):
    """Writes the d3 / networkx node-link format (edges under "links")."""
    stream = _Stream(handle)
    stream.write('{"directed":' + _dumps(bool(directed)) + ',"multigraph":false,"graph":'
                 + _dumps(attributes or {}) + ',"nodes":[')
    n = _write_list(stream, (dict(attrs, id=str(key)) for key, attrs in nodes))
    stream.write('\n],"links":[')
    e = _write_list(stream, _edge_items(
        edges, lambda s, t, attrs: dict(attrs, source=str(s), target=str(t))),
        ('{"source":"%d","target":"%d",', "}"))
    stream.write("\n]}\n")
    stream.flush()
    return n, e
