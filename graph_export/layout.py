"""Communities, 2-D positions, sizes and colours for the book graph (deterministic).

A graph file "looks like a map" when it opens if related books sit together and
each neighbourhood has its own colour. Doing that with a force layout over all
2.36M books would take hours, so the map is built in two cheap levels:

1. communities: Louvain (networkx, fixed seed) on the undirected kNN graph up to
   `louvain_max_nodes` books; above that, a vectorised label propagation in
   numpy (each book takes the label with the largest summed edge weight among
   its neighbours, ties to the lower label): ~3 s per pass over 6M arcs here,
   so minutes, not hours, for the 47M arcs of the full catalogue;
2. positions: the communities are laid out as one small graph (spring layout on
   the summed inter-community weights, or PCA of the community centroids when
   there are many), each community gets a disc with area proportional to its
   size, and its books are spread over the disc by a spring layout of their own
   subgraph (small graphs) or by a PCA projection of their embeddings.

Community ids are renumbered by size (0 = largest; ties: lowest book first).
"""
import colorsys

import numpy as np

LOUVAIN_MAX_NODES = 50_000
SPRING_MAX_NODES = 50_000     # per-community spring layouts only below this size
SPRING_COMMUNITY_MAX = 400    # ... and only for communities up to this size
SPRING_CENTRES_MAX = 600      # spring layout of the community graph up to this many
# tab20, reordered so neighbouring community ids get contrasting colours.
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (127, 127, 127),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229)]


def _renumber(labels):
    """Relabels communities 0..C-1 by size descending, ties by lowest member."""
    labels = np.asarray(labels)
    uniq, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    new_id = np.empty(len(uniq), np.int64)
    new_id[order] = np.arange(len(uniq))
    return new_id[np.searchsorted(uniq, labels)]


def label_propagation(n, sources, targets, weights, iterations=15):
    """Vectorised, deterministic label propagation on the symmetrised graph."""
    src = np.concatenate([sources, targets]).astype(np.int64)
    dst = np.concatenate([targets, sources]).astype(np.int64)
    w = np.concatenate([weights, weights]).astype(np.float64)
    labels = np.arange(n, dtype=np.int64)
    for _ in range(iterations):
        lab = labels[src]
        order = np.lexsort((lab, dst))
        d_s, l_s, w_s = dst[order], lab[order], w[order]
        start = np.flatnonzero(np.r_[True, (d_s[1:] != d_s[:-1]) | (l_s[1:] != l_s[:-1])])
        sums = np.add.reduceat(w_s, start) if len(start) else np.zeros(0)
        node, label = d_s[start], l_s[start]
        best = np.lexsort((label, -sums, node))
        node, label = node[best], label[best]
        keep = np.r_[True, node[1:] != node[:-1]] if len(node) else np.zeros(0, bool)
        new = labels.copy()
        new[node[keep]] = label[keep]
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def detect_communities(n, sources, targets, weights, seed=0,
                       louvain_max_nodes=LOUVAIN_MAX_NODES):
    """Community id per node (int64 `[n]`), numbered by size."""
    if n == 0:
        return np.zeros(0, np.int64)
    if n <= louvain_max_nodes:
        import networkx as nx
        graph = nx.Graph()
        graph.add_nodes_from(range(n))
        graph.add_weighted_edges_from(
            zip(np.asarray(sources).tolist(), np.asarray(targets).tolist(),
                np.maximum(np.asarray(weights, np.float64), 1e-6).tolist()))
        parts = nx.community.louvain_communities(graph, weight="weight", seed=seed)
        labels = np.empty(n, np.int64)
        for i, members in enumerate(sorted(parts, key=min)):
            labels[list(members)] = i
    else:
        labels = label_propagation(n, sources, targets, weights)
    return _renumber(labels)


def _pca2(matrix):
    """Projection of the rows onto their first two principal axes (float64 [m, 2])."""
    centred = matrix - matrix.mean(axis=0)
    if len(centred) < 2:
        return np.zeros((len(centred), 2))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2]
    if axes.shape[0] < 2:
        axes = np.vstack([axes, np.zeros((2 - axes.shape[0], matrix.shape[1]))])
    proj = centred @ axes.T
    return proj


def _unit_disc(points):
    """Scales points so their 95th-percentile radius is 1."""
    points = points - points.mean(axis=0)
    radius = np.percentile(np.linalg.norm(points, axis=1), 95) if len(points) else 0
    return points / radius if radius > 0 else points


def compute_positions(embeddings, communities, sources, targets, weights, seed=0):
    """Two-level map layout: float64 `[n, 2]` positions."""
    import networkx as nx
    n = len(communities)
    if n == 0:
        return np.zeros((0, 2))
    emb = np.asarray(embeddings, np.float64)
    num_c = int(communities.max()) + 1
    sizes = np.bincount(communities, minlength=num_c)
    centroids = np.zeros((num_c, emb.shape[1]))
    np.add.at(centroids, communities, emb)
    centroids /= sizes[:, None]

    # Level 1: where each community sits.
    if num_c == 1:
        centres = np.zeros((1, 2))
    elif num_c <= SPRING_CENTRES_MAX:
        cs, ct = communities[sources], communities[targets]
        between = cs != ct
        cgraph = nx.Graph()
        cgraph.add_nodes_from(range(num_c))
        pair_w = {}
        for a, b, w in zip(cs[between].tolist(), ct[between].tolist(),
                           np.asarray(weights)[between].tolist()):
            key = (min(a, b), max(a, b))
            pair_w[key] = pair_w.get(key, 0.0) + max(w, 1e-6)
        cgraph.add_weighted_edges_from((a, b, w) for (a, b), w in sorted(pair_w.items()))
        init = {c: p for c, p in enumerate(_unit_disc(_pca2(centroids)) + 1e-3)}
        pos = nx.spring_layout(cgraph, pos=init, weight="weight", seed=seed, iterations=100)
        centres = np.array([pos[c] for c in range(num_c)])
    else:
        centres = _pca2(centroids)
    centres = _unit_disc(centres)
    # Spread centres so discs (area ~ size) rarely overlap: the total disc area
    # is ~n, the map is a square of side ~ 3 sqrt(n).
    centres *= 1.5 * np.sqrt(n)
    radii = np.sqrt(sizes) * 0.9

    # Level 2: books inside their community's disc.
    local = np.zeros((n, 2))
    use_spring = n <= SPRING_MAX_NODES
    members_of = np.argsort(communities, kind="stable")
    bounds = np.r_[0, np.cumsum(sizes)]
    src, tgt = np.asarray(sources), np.asarray(targets)
    same = communities[src] == communities[tgt] if len(src) else np.zeros(0, bool)
    for c in range(num_c):
        members = members_of[bounds[c]:bounds[c + 1]]
        if len(members) == 1:
            continue
        if use_spring and len(members) <= SPRING_COMMUNITY_MAX:
            sub = nx.Graph()
            sub.add_nodes_from(members.tolist())
            mask = same & (communities[src] == c)
            sub.add_edges_from(zip(src[mask].tolist(), tgt[mask].tolist()))
            pos = nx.spring_layout(sub, seed=seed, iterations=50)
            pts = np.array([pos[m] for m in members.tolist()])
        else:
            pts = _pca2(emb[members])
        local[members] = _unit_disc(pts)
    positions = centres[communities] + local * radii[communities, None]
    return np.round(positions, 3)


def community_colours(communities):
    """(r, g, b) per community id: tab20 for the 20 largest, then golden-ratio hues."""
    num_c = int(communities.max()) + 1 if len(communities) else 0
    colours = np.zeros((num_c, 3), np.int64)
    for c in range(num_c):
        if c < len(PALETTE):
            colours[c] = PALETTE[c]
        else:
            hue = (c * 0.618033988749895) % 1.0
            colours[c] = [round(255 * v) for v in colorsys.hsv_to_rgb(hue, 0.55, 0.85)]
    return colours


def node_sizes(popularity):
    """viz:size from popularity (ratings count or in-degree): 2..20, log scale."""
    pop = np.nan_to_num(np.asarray(popularity, np.float64), nan=0.0).clip(min=0)
    top = np.log1p(pop.max()) if len(pop) else 0
    if top <= 0:
        return np.full(len(pop), 4.0)
    return np.round(2 + 18 * np.log1p(pop) / top, 2)
