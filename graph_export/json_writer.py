"""Streaming JSON graph writers: graphology's serialisation format and d3 node-link.

graphology format (what `graph.import(...)`, sigma.js and Gephi Lite load)::

    {"attributes": {...},
     "options": {"type": "directed", "multi": false, "allowSelfLoops": false},
     "nodes": [{"key": "0", "attributes": {"label": ..., "x": ..., "y": ...}}, ...],
     "edges": [{"source": "0", "target": "7", "attributes": {"weight": 0.93}}, ...]}

node-link (d3-force, `networkx.node_link_graph(data, edges="links")`)::

    {"directed": true, "multigraph": false, "graph": {...},
     "nodes": [{"id": "0", ...}], "links": [{"source": "0", "target": "7", ...}]}

Both are written a batch of nodes or edges at a time (Arrow string columns, see
`text_columns`), so memory does not grow with the graph. Strings are cleaned the
same way as in the GEXF file so all formats carry identical labels; non-finite
node attributes and None become null.
"""
import json
import math

import numpy as np
import pyarrow as pa

from graph_export import text_columns
from graph_export.gexf_writer import clean_text


class EdgeBatch:
    """A batch of numeric edges.

    Args:
      sources, targets: integer node keys, one per edge.
      columns: attribute name -> finite numbers (or an Arrow string column), one per edge.
    """

    def __init__(self, sources, targets, columns):
        self.sources, self.targets, self.columns = sources, targets, columns

    def graphology_rows(self):
        """graphology edge objects, one per row of an Arrow string column."""
        return self._rows('","attributes":{', "}}")

    def nodelink_rows(self):
        """node-link edge objects, one per row of an Arrow string column."""
        return self._rows('",', "}")

    def _rows(self, middle, tail):
        """`{"source":"S","target":"T` + `middle` + the attributes + `tail`."""
        parts = ['{"source":"', text_columns.integers(self.sources), '","target":"',
                 text_columns.integers(self.targets), middle]
        for i, (name, values) in enumerate(self.columns.items()):
            text = (text_columns.json_string(values) if isinstance(values, (pa.Array, pa.ChunkedArray))
                    and pa.types.is_string(values.type)
                    else text_columns.finite_numbers(np.asarray(values), f"edge attribute {name}"))
            parts += [("," if i else "") + json.dumps(name) + ":", text]
        return text_columns.concat(*parts, tail)


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


def _write_list(handle, batches):
    """Writes `[` ... `]`'s inside: each batch's rows (JSON objects) one per line,
    separated by commas. Returns the number of rows."""
    count = 0
    for rows in batches:
        if len(rows):
            text = text_columns.as_bytes(text_columns.concat(",\n", rows))
            handle.write(text if count else text[1:])
            count += len(rows)
    return count


def write_graphology(handle, nodes, edges, attributes=None, directed=True):
    """Writes graphology's serialised graph.

    Args:
      handle: binary file-like object.
      nodes: iterable of Arrow string columns of node objects
        (`graph_files.NodeText.json_rows("graphology")`).
      edges: iterable of Arrow string columns of edge objects
        (`EdgeBatch.graphology_rows()`).
      attributes: graph attributes (name, description, ...).
      directed: graph type option.

    Returns:
      `(nodes_written, edges_written)`.
    """
    options = {"type": "directed" if directed else "undirected", "multi": False,
               "allowSelfLoops": False}
    handle.write(('{"attributes":' + _dumps(attributes or {}) + ',"options":'
                  + _dumps(options) + ',"nodes":[').encode("utf-8"))
    n = _write_list(handle, nodes)
    handle.write(b'\n],"edges":[')
    e = _write_list(handle, edges)
    handle.write(b"\n]}\n")
    return n, e


def write_nodelink(handle, nodes, edges, attributes=None, directed=True):
    """Writes the d3 / networkx node-link format (edges under "links"); `nodes` as
    `graph_files.NodeText.json_rows("nodelink")`, `edges` as `EdgeBatch.nodelink_rows()`."""
    handle.write(('{"directed":' + _dumps(bool(directed)) + ',"multigraph":false,"graph":'
                  + _dumps(attributes or {}) + ',"nodes":[').encode("utf-8"))
    n = _write_list(handle, nodes)
    handle.write(b'\n],"links":[')
    e = _write_list(handle, edges)
    handle.write(b"\n]}\n")
    return n, e
