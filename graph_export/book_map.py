"""The map of the graph's books: communities, regions, positions and the names of both.

- communities (fine): Louvain / label propagation on the kNN graph (`layout.detect_communities`);
- positions: t-SNE of the books' neighbourhoods for the most-read `--layout_max_nodes`
  books, every other book placed from its neighbours (`layout.compute_positions`);
- regions (coarse, 10-40): whole communities grouped by where they sit on the map
  (`layout.detect_regions`), so a region is one area a reader can point at;
- names: c-TF-IDF terms of each community's and region's books (`names`).

`communities.parquet` lists every community and region with its name, scored
terms, size, most-read books and centre on the map (docs/artifacts.md).
"""
import time

import numpy as np
import pyarrow as pa

from graph_export import graph_files, layout, names

COMMUNITIES_SCHEMA = pa.schema([
    ("level", pa.string()), ("id", pa.int64()), ("parent", pa.int64()), ("name", pa.string()),
    ("terms", pa.list_(pa.string())), ("scores", pa.list_(pa.float64())), ("size", pa.int64()),
    ("top_books", pa.list_(pa.int64())), ("x", pa.float64()), ("y", pa.float64())])


def _group_table(level, named, parents, book_index, positions, groups):
    """communities.parquet rows of one level (`named` from `names.name_groups`)."""
    count = len(named["name"])
    centres = layout.group_centres(groups, positions, count)
    return pa.table({
        "level": pa.array([level] * count, pa.string()),
        "id": pa.array(np.arange(count), pa.int64()),
        "parent": pa.array(parents, pa.int64()),
        "name": pa.array(named["name"], pa.string()),
        "terms": pa.array(named["terms"], pa.list_(pa.string())),
        "scores": pa.array(named["scores"], pa.list_(pa.float64())),
        "size": pa.array(named["size"], pa.int64()),
        "top_books": pa.array([book_index[rows].tolist() for rows in named["top_books"]],
                              pa.list_(pa.int64())),
        "x": pa.array(np.round(centres[:, 0], 3)), "y": pa.array(np.round(centres[:, 1], 3)),
    }, schema=COMMUNITIES_SCHEMA)


def knn_preservation_of_cut(positions, rows, sources, targets):
    """`layout.knn_preservation` among the laid-out `rows` (edges with both ends there)."""
    inside = np.zeros(len(positions), bool)
    inside[rows] = True
    keep = inside[sources] & inside[targets]
    local = np.cumsum(inside) - 1
    return layout.knn_preservation(positions[rows], local[sources[keep]], local[targets[keep]])


def build_map(nodes, unit, sources, targets, weights, catalogue, options, timings):
    """Adds the map to `nodes` (rows = the valid books, `unit` their unit vectors).

    Args:
      sources, targets: the edges as rows of `nodes`; weights: their cosines (float64).
      catalogue: an `inputs.Catalogue` or None.
      options: seed, louvain_max_nodes, layout_max_nodes, threads.
      timings: gets communities_seconds, layout_seconds, names_seconds and
        layout_knn_preservation (of the laid-out books: the map's own quality figure).

    Returns:
      `(nodes + community, community_name, region, region_name, x, y, communities table)`.
    """
    n = nodes.num_rows
    started = time.time()
    communities = layout.detect_communities(n, sources, targets, weights, seed=options.seed,
                                            louvain_max_nodes=options.louvain_max_nodes)
    timings["communities_seconds"] = round(time.time() - started, 3)

    started = time.time()
    laid_out, _ = graph_files.most_read(nodes, options.layout_max_nodes)
    positions = layout.compute_positions(unit, sources, targets, seed=options.seed,
                                         laid_out=laid_out, threads=options.threads)
    region_of = layout.detect_regions(communities, positions, seed=options.seed)
    regions = region_of[communities] if n else np.zeros(0, np.int64)
    timings["layout_seconds"] = round(time.time() - started, 3)
    kept = knn_preservation_of_cut(positions, laid_out, sources, targets)
    timings["layout_knn_preservation"] = None if kept != kept else round(kept, 4)

    started = time.time()
    titles = nodes.column("title").to_pylist()
    columns = catalogue.columns if catalogue else {}
    terms = names.book_terms(
        n, shelves=catalogue.telling_shelves() if catalogue else None, genres=columns.get("genre"),
        authors=catalogue.author_lists if catalogue else None, titles=titles)
    popularity = graph_files.popularity(nodes)[1]
    num_c = int(communities.max()) + 1 if n else 0
    num_r = int(regions.max()) + 1 if n else 0
    community_names = names.name_groups(communities, num_c, terms, popularity, titles)
    region_names = names.name_groups(regions, num_r, terms, popularity, titles)
    book_index = nodes.column("book_index").to_numpy()
    table = pa.concat_tables([
        _group_table("region", region_names, np.full(num_r, -1), book_index, positions, regions),
        _group_table("community", community_names, region_of, book_index, positions,
                     communities)])
    timings["names_seconds"] = round(time.time() - started, 3)

    community_name = pa.array(community_names["name"], pa.string())
    region_name = pa.array(region_names["name"], pa.string())
    nodes = (nodes.append_column("community", pa.array(communities.astype(np.int64)))
             .append_column("community_name", community_name.take(pa.array(communities)))
             .append_column("region", pa.array(regions.astype(np.int64)))
             .append_column("region_name", region_name.take(pa.array(regions)))
             .append_column("x", pa.array(positions[:, 0]))
             .append_column("y", pa.array(positions[:, 1])))
    return nodes, table
