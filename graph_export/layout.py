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
import numpy as np

LOUVAIN_MAX_NODES = 50_000
SPRING_MAX_NODES = 50_000     # per-community spring layouts only below this size
SPRING_COMMUNITY_MAX = 400    # ... and only for communities up to this size
SPRING_CENTRES_MAX = 600      # spring layout of the community graph up to this many
PCA_COMMUNITY_MIN = 256       # own PCA for communities of at least this many books
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
    """Vectorised, deterministic label propagation on the symmetrised graph.

    Each pass, every book takes the label with the largest summed edge weight
    among its neighbours (ties to the lower label). The arcs are sorted by
    book once; a pass then sorts one int64 key (book * n + label) instead of
    two columns, and picks each book's best label with reductions -- no
    second sort. Memory: ~7 arrays of 2E values (E edges).
    """
    src = np.concatenate([sources, targets]).astype(np.int32 if n < 2**31 else np.int64)
    dst = np.concatenate([targets, sources])
    order = np.argsort(dst, kind="stable")
    base = dst[order].astype(np.int64) * n
    del dst
    src = src[order]
    w = np.concatenate([weights, weights]).astype(np.float64)[order]
    del order
    labels = np.arange(n, dtype=np.int64)
    for _ in range(iterations):
        key = base + labels[src]
        order = np.argsort(key, kind="stable")
        key = key[order]
        start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        sums = np.add.reduceat(w[order], start) if len(start) else np.zeros(0)
        del order
        node, label = key[start] // n, key[start] % n
        del key
        # groups are in (node, label) order: per node, the first group with the
        # node's largest sum is its lowest best label
        first = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])
        best = np.maximum.reduceat(sums, first) if len(first) else np.zeros(0)
        is_best = sums == np.repeat(best, np.diff(np.r_[first, len(node)]))
        winners = np.flatnonzero(is_best)
        winners = winners[np.r_[True, node[winners][1:] != node[winners][:-1]]] \
            if len(winners) else winners
        new = labels.copy()
        new[node[winners]] = label[winners]
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
    """Projection of the rows onto their first two principal axes (float64 [m, 2]).

    From the eigenvectors of the dim x dim covariance, not an SVD of the m x dim
    rows: the same axes (up to sign) for a fraction of the work."""
    centred = np.asarray(matrix, np.float64) - np.mean(matrix, axis=0, dtype=np.float64)
    if len(centred) < 2:
        return np.zeros((len(centred), 2))
    axes = np.linalg.eigh(centred.T @ centred)[1][:, ::-1][:, :2]
    if axes.shape[1] < 2:
        axes = np.hstack([axes, np.zeros((axes.shape[0], 2 - axes.shape[1]))])
    return centred @ axes


def _unit_disc(points):
    """Scales points so their 95th-percentile radius is 1."""
    points = points - points.mean(axis=0)
    radius = np.percentile(np.linalg.norm(points, axis=1), 95) if len(points) else 0
    return points / radius if radius > 0 else points


def _community_pairs(communities, sources, targets, weights, num_c):
    """Summed weight (each >= 1e-6) of the edges between each pair of communities:
    `(a, b, weight)` arrays with a < b, in (a, b) order."""
    cs, ct = communities[sources], communities[targets]
    between = cs != ct
    lo, hi = np.minimum(cs, ct)[between], np.maximum(cs, ct)[between]
    pair, inverse = np.unique(lo * num_c + hi, return_inverse=True)
    summed = np.bincount(inverse, np.maximum(np.asarray(weights, np.float64)[between], 1e-6),
                         minlength=len(pair))
    return pair // num_c, pair % num_c, summed


def _within_community_projection(emb, communities, sizes):
    """Every book's offset from its community centroid along the two principal
    axes of all books, scaled per community so its RMS radius is 0.58 (the
    95th-percentile radius of a 2-D Gaussian is then ~1, as `_unit_disc` gives).
    O(n), for the many small communities a per-community PCA would loop over."""
    num_c = len(sizes)
    mean = emb.mean(axis=0, dtype=np.float64)
    cov = np.zeros((emb.shape[1], emb.shape[1]))
    for lo in range(0, len(emb), 262_144):
        part = emb[lo:lo + 262_144].astype(np.float64) - mean
        cov += part.T @ part
    axes = np.linalg.eigh(cov)[1][:, ::-1][:, :2]
    flat = np.empty((len(emb), 2))
    for lo in range(0, len(emb), 262_144):
        flat[lo:lo + 262_144] = (emb[lo:lo + 262_144].astype(np.float64) - mean) @ axes
    for d in range(2):
        flat[:, d] -= (np.bincount(communities, flat[:, d], num_c) / sizes)[communities]
    rms = np.sqrt(np.bincount(communities, (flat ** 2).sum(axis=1), num_c) / sizes)
    scale = np.divide(0.58, rms, out=np.zeros(num_c), where=rms > 0)
    return flat * scale[communities, None]


def compute_positions(embeddings, communities, sources, targets, weights, seed=0):
    """Two-level map layout: float64 `[n, 2]` positions.

    Vectorised except for the per-community spring layouts (small graphs only)
    and a PCA per community of at least `PCA_COMMUNITY_MIN` books (at most
    n / 256 of them); smaller communities are placed by `_within_community_projection`.
    """
    n = len(communities)
    if n == 0:
        return np.zeros((0, 2))
    emb = np.asarray(embeddings, np.float32)
    num_c = int(communities.max()) + 1
    sizes = np.bincount(communities, minlength=num_c)
    centroids = np.stack([np.bincount(communities, emb[:, d], num_c)
                          for d in range(emb.shape[1])], axis=1) / sizes[:, None]
    src, tgt = np.asarray(sources, np.int64), np.asarray(targets, np.int64)

    # Level 1: where each community sits.
    if num_c == 1:
        centres = np.zeros((1, 2))
    elif num_c <= SPRING_CENTRES_MAX:
        import networkx as nx
        cgraph = nx.Graph()
        cgraph.add_nodes_from(range(num_c))
        a, b, w = _community_pairs(communities, src, tgt, weights, num_c)
        cgraph.add_weighted_edges_from(zip(a.tolist(), b.tolist(), w.tolist()))
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
    local = _within_community_projection(emb, communities, sizes)
    spring = (sizes <= SPRING_COMMUNITY_MAX) if n <= SPRING_MAX_NODES \
        else np.zeros(num_c, bool)
    own = (sizes > 1) & (spring | (sizes >= PCA_COMMUNITY_MIN))
    members_of = np.argsort(communities, kind="stable")
    bounds = np.r_[0, np.cumsum(sizes)]
    same = communities[src] == communities[tgt] if len(src) else np.zeros(0, bool)
    for c in np.flatnonzero(own):
        members = members_of[bounds[c]:bounds[c + 1]]
        if spring[c]:
            import networkx as nx
            sub = nx.Graph()
            sub.add_nodes_from(members.tolist())
            mask = same & (communities[src] == c)
            sub.add_edges_from(zip(src[mask].tolist(), tgt[mask].tolist()))
            pos = nx.spring_layout(sub, seed=seed, iterations=50)
            pts = np.array([pos[m] for m in members.tolist()])
        else:
            pts = _pca2(emb[members].astype(np.float64))
        local[members] = _unit_disc(pts)
    positions = centres[communities] + local * radii[communities, None]
    return np.round(positions, 3)


def community_colours(communities):
    """(r, g, b) per community id: tab20 for the 20 largest, then golden-ratio hues
    at saturation 0.55, value 0.85 (`colorsys.hsv_to_rgb`'s arithmetic, vectorised:
    a random 100k-book graph has ~50k communities)."""
    num_c = int(np.max(communities)) + 1 if len(communities) else 0
    hue = (np.arange(num_c) * 0.618033988749895) % 1.0
    sector = (hue * 6.0).astype(np.int64)
    f = hue * 6.0 - sector
    v, s = 0.85, 0.55
    p, q, t = np.full(num_c, v * (1.0 - s)), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    v = np.full(num_c, v)
    rgb = np.choose(sector[:, None] % 6, [np.stack(c, axis=1) for c in (
        (v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])
    colours = np.round(255 * rgb).astype(np.int64)
    head = min(num_c, len(PALETTE))
    colours[:head] = np.reshape(PALETTE[:head], (head, 3))
    return colours


def node_sizes(popularity):
    """viz:size from popularity (ratings count or in-degree): 2..20, log scale."""
    pop = np.nan_to_num(np.asarray(popularity, np.float64), nan=0.0).clip(min=0)
    top = np.log1p(pop.max()) if len(pop) else 0
    if top <= 0:
        return np.full(len(pop), 4.0)
    return np.round(2 + 18 * np.log1p(pop) / top, 2)
