"""Communities, 2-D positions, regions, sizes and colours for the book graph (deterministic).

A graph file "looks like a map" when it opens if each book's neighbours sit next to
it and each neighbourhood has its own area and colour:

1. communities: Louvain (networkx, fixed seed) on the undirected kNN graph up to
   `louvain_max_nodes` books; above that, a vectorised label propagation in numpy
   (minutes, not hours, for the 47M arcs of the full catalogue);
2. positions: t-SNE (openTSNE) of the `layout_max_nodes` most-read books, from
   perplexity-10 affinities over each book's exact 30 nearest books plus extra mass
   on the graph's own edges (a low perplexity keeps the 10 nearest books nearest on
   the map, which is what a reader follows); every other book is placed at the mean
   of its placed neighbours (O(edges), so 2.36M books cost what 100k do, plus that);
3. regions: whole communities grouped by where they sit on the map (weighted k-means).

Community and region ids are renumbered by size (0 = largest; ties: lowest book first).
"""
import numpy as np

LOUVAIN_MAX_NODES = 50_000
LAYOUT_MAX_NODES = 100_000   # books laid out by t-SNE; the others placed from neighbours
TSNE_ITERATIONS = 500         # after 250 of early exaggeration (openTSNE's defaults)
TSNE_PERPLEXITY = 10          # over the exact 30 nearest books (openTSNE's default: 30)
GRAPH_EDGE_WEIGHT = 0.5       # extra affinity mass on the graph's own top-k edges
FFT_MIN_BOOKS = 10_000        # FFT gradients from here on (openTSNE's own "auto" switch)
LAYOUT_PCA_DIM = 256          # wider embeddings are searched in their first 256 axes
REGIONS_MIN, REGIONS_MAX = 10, 40
# tab20, reordered so neighbouring community ids get contrasting colours.
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (127, 127, 127),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229)]


def _renumber(labels, weights=None):
    """Relabels groups 0..C-1 by size descending (the summed `weights` of their members,
    or their count), ties by lowest member."""
    labels = np.asarray(labels)
    uniq, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    sizes = np.bincount(inverse, weights, minlength=len(uniq))
    order = np.lexsort((first, -sizes))
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


def knn_affinities(n, sources, targets):
    """The kNN graph symmetrised with equal weights, as a CSR matrix (row-sum free)."""
    from scipy import sparse
    src, tgt = np.asarray(sources, np.int64), np.asarray(targets, np.int64)
    keep = src != tgt
    matrix = sparse.csr_matrix((np.ones(int(keep.sum())), (src[keep], tgt[keep])), shape=(n, n))
    matrix = matrix + matrix.T
    matrix.data[:] = 1.0
    return matrix


def principal_axes(matrix, dim, centred, chunk=262_144):
    """Rows of `matrix` on their top `dim` principal axes (float64 `[m, dim]`, zero
    columns past the matrix's width): the eigenvectors of XᵀX, of the rows minus their
    mean when `centred`. Uncentred axes keep dot products best, which the cosine search
    needs (measured from the origin: a direction all books share stays in); centred
    ones spread the books, which the layout's start needs.

    The dim x dim moment is summed in chunks (not an SVD of the rows: the same axes, up
    to sign, for a fraction of the work and memory). Each axis's sign is fixed (largest
    loading positive) so the result does not depend on LAPACK."""
    width = matrix.shape[1]
    mean = (np.mean(matrix, axis=0, dtype=np.float64) if centred and len(matrix)
            else np.zeros(width))
    moment = np.zeros((width, width))
    for lo in range(0, len(matrix), chunk):
        part = matrix[lo:lo + chunk].astype(np.float64) - mean
        moment += part.T @ part
    axes = np.zeros((width, dim))
    top = np.linalg.eigh(moment)[1][:, ::-1][:, :dim]
    top *= np.where(top[np.abs(top).argmax(axis=0), np.arange(top.shape[1])] < 0, -1, 1)
    axes[:, :top.shape[1]] = top
    out = np.empty((len(matrix), dim))
    for lo in range(0, len(matrix), chunk):
        out[lo:lo + chunk] = (matrix[lo:lo + chunk].astype(np.float64) - mean) @ axes
    return out


def perplexity_affinities(unit, perplexity=TSNE_PERPLEXITY, threads=1):
    """t-SNE's input affinities from the 3 x perplexity nearest books by cosine.

    The neighbours come from the same exact kernel as the graph (`topk`), in
    the first LAYOUT_PCA_DIM principal axes when the embeddings are wider (as
    t-SNE is usually run: the search costs dim x n^2, and the graph's own exact
    edges are added by `layout_affinities`); each row's Gaussian bandwidth is
    found by a bisection run on all rows at once (entropy = log(perplexity)).
    Returns the symmetrised CSR matrix, summing to 1."""
    from concurrent.futures import ThreadPoolExecutor
    from scipy import sparse
    from graph_export import topk
    n = len(unit)
    k = int(min(n - 1, 3 * perplexity))
    if unit.shape[1] > LAYOUT_PCA_DIM:
        unit = topk.normalise_rows(
            principal_axes(unit, LAYOUT_PCA_DIM, centred=False).astype(np.float32))[0]
    index = topk.CandidateIndex(np.ascontiguousarray(unit, np.float32))
    blocks = [np.arange(lo, min(n, lo + topk.DEFAULT_BLOCK_ROWS))
              for lo in range(0, n, topk.DEFAULT_BLOCK_ROWS)]
    with ThreadPoolExecutor(max(1, threads)) as pool:
        parts = list(pool.map(lambda rows: topk.topk_block(index, rows, k), blocks))
    near = np.concatenate([p[0] for p in parts])
    dist = 1.0 - np.concatenate([p[1] for p in parts]).astype(np.float64)
    dist -= dist.min(axis=1, keepdims=True)
    lo, hi = np.full(n, 1e-8), np.full(n, 1e8)
    target = np.log(min(perplexity, k))
    for _ in range(60):
        beta = np.sqrt(lo * hi)
        weight = np.exp(-dist * beta[:, None])
        prob = weight / weight.sum(axis=1, keepdims=True)
        entropy = -(prob * np.log(np.maximum(prob, 1e-300))).sum(axis=1)
        wide = entropy > target
        lo, hi = np.where(wide, beta, lo), np.where(wide, hi, beta)
    matrix = sparse.csr_matrix((prob.ravel(), (np.repeat(np.arange(n), k), near.ravel())),
                               shape=(n, n))
    matrix = matrix + matrix.T
    return matrix / matrix.sum()


def layout_affinities(unit, sources, targets, threads=1):
    """What t-SNE keeps: perplexity affinities over the books' exact nearest
    neighbours, plus `GRAPH_EDGE_WEIGHT` of the mass on the graph's own edges --
    the neighbourhoods a reader follows on the map stay the closest points."""
    n = len(unit)
    graph = knn_affinities(n, sources, targets)
    near = perplexity_affinities(unit, threads=threads)
    return near + GRAPH_EDGE_WEIGHT * graph / max(graph.sum(), 1.0)


def tsne_positions(embeddings, sources, targets, seed=0, n_iter=TSNE_ITERATIONS,
                   threads=1):
    """t-SNE (openTSNE) of `layout_affinities`: float64 `[n, 2]`.

    Initialised from the first two principal axes of the embeddings (global
    structure kept, same start for the same input), then openTSNE's two phases:
    early exaggeration (12, 250 iterations) and `n_iter` iterations at
    exaggeration 1. Deterministic for one `seed`, whatever `threads` (the neighbour
    search's, and the optimiser's from 10k books on: its FFT gradient gives the same
    bytes on 1 or 2 threads).
    """
    n = len(embeddings)
    if n < 4 or len(sources) == 0:
        return principal_axes(embeddings, 2, centred=True) if n else np.zeros((0, 2))
    import openTSNE
    from openTSNE import affinity, initialization
    start = principal_axes(embeddings, 2, centred=True)
    if not np.std(start[:, 0]) > 0:   # identical (e.g. 1-dimensional) vectors: no axis to start on
        start = np.random.default_rng(seed).normal(size=start.shape)
    init = initialization.rescale(start)
    # Barnes-Hut below 10k books (seconds on one thread; more threads only fight the
    # launcher's edge-text thread), FFT interpolation above (there threads pay).
    fft = n >= FFT_MIN_BOOKS
    tsne = openTSNE.TSNE(n_components=2, n_iter=n_iter, n_jobs=max(1, threads) if fft else 1,
                         negative_gradient_method="fft" if fft else "bh", random_state=seed,
                         verbose=False)
    embedding = tsne.fit(affinities=affinity.PrecomputedAffinities(
        layout_affinities(embeddings, sources, targets, threads)), initialization=init)
    return np.asarray(embedding, np.float64)


def knn_preservation(positions, sources, targets, k=10):
    """Share of each book's graph neighbours (`sources` -> `targets`) that are among
    its `k` nearest points in the layout: how well the map keeps neighbourhoods."""
    from scipy.spatial import cKDTree
    n = len(positions)
    if n < 2 or len(sources) == 0:
        return float("nan")
    k_eff = min(k, n - 1)
    _, near = cKDTree(positions).query(positions, k=k_eff + 1)
    near = np.sort(near[:, 1:], axis=1)
    src, tgt = np.asarray(sources, np.int64), np.asarray(targets, np.int64)
    row = near[src]
    hit = (row == tgt[:, None]).any(axis=1)
    return float(hit.mean())


def place_from_neighbours(positions, placed, sources, targets, passes=8):
    """Positions for the books outside the laid-out set: the mean of their placed
    neighbours (either direction of an edge), repeated `passes` times so books
    whose neighbours were placed in the pass before follow; books still without
    a placed neighbour go to the centre. O(edges) memory and time per pass."""
    positions, placed = positions.copy(), placed.copy()
    src = np.concatenate([sources, targets])
    dst = np.concatenate([targets, sources])
    for _ in range(passes):
        if placed.all():
            break
        use = placed[src] & ~placed[dst]
        if not use.any():
            break
        counts = np.bincount(dst[use], minlength=len(placed))
        new = counts > 0
        for d in range(2):
            sums = np.bincount(dst[use], positions[src[use], d], minlength=len(placed))
            positions[new, d] = sums[new] / counts[new]
        placed |= new
    positions[~placed] = 0.0
    return positions


def compute_positions(embeddings, sources, targets, seed=0, laid_out=None, threads=1):
    """The map's x, y: t-SNE of the kNN graph among `laid_out` rows (all when None),
    every other book placed from its neighbours (`place_from_neighbours`).

    Returns float64 `[n, 2]`, rounded to 3 decimals, scaled so the map spans
    about 1000 units (Gephi's and the explorer's zoom need no extreme values).
    """
    n = len(embeddings)
    if n == 0:
        return np.zeros((0, 2))
    src, tgt = np.asarray(sources, np.int64), np.asarray(targets, np.int64)
    if laid_out is None or len(laid_out) >= n:
        positions = tsne_positions(embeddings, src, tgt, seed, threads=threads)
    else:
        rows = np.sort(np.asarray(laid_out, np.int64))
        local = np.full(n, -1, np.int64)
        local[rows] = np.arange(len(rows))
        inside = (local[src] >= 0) & (local[tgt] >= 0)
        sub = tsne_positions(np.asarray(embeddings)[rows], local[src[inside]],
                             local[tgt[inside]], seed, threads=threads)
        positions = np.zeros((n, 2))
        positions[rows] = sub
        placed = np.zeros(n, bool)
        placed[rows] = True
        positions = place_from_neighbours(positions, placed, src, tgt)
    positions -= positions.mean(axis=0)
    span = np.percentile(np.abs(positions), 99) if n > 1 else 0
    if span > 0:
        positions *= 500.0 / span
    return np.round(positions, 3)


def group_centres(groups, positions, count):
    """Mean position of each of `count` groups (float64 `[count, 2]`; empty groups at 0)."""
    sizes = np.maximum(np.bincount(groups, minlength=count), 1)
    return np.stack([np.bincount(groups, positions[:, d], minlength=count) / sizes
                     for d in range(2)], axis=1)


def detect_regions(communities, positions, seed=0, most=REGIONS_MAX, fewest=REGIONS_MIN):
    """Coarse regions of the map: whole communities grouped by where they sit.

    A weighted k-means (k-means++ start from a seeded generator, 50 Lloyd
    steps) of the communities' mean positions, each weighted by its book
    count, with k = a quarter of the communities within [fewest, most] (all
    communities when there are fewer). A region is then one area of the map
    a reader can point at, made of whole communities. Returns the region of
    each community, numbered by book count (0 = largest; ties: lowest
    community first)."""
    num_c = int(communities.max()) + 1 if len(communities) else 0
    if num_c == 0:
        return np.zeros(0, np.int64)
    sizes = np.bincount(communities, minlength=num_c).astype(np.float64)
    centres = group_centres(communities, positions, num_c)
    k = int(min(num_c, max(fewest, min(most, round(num_c / 4)))))
    rng = np.random.default_rng(seed)
    chosen = [int(np.argmax(sizes))]
    for _ in range(1, k):
        gap = np.min(((centres[:, None, :] - centres[chosen][None]) ** 2).sum(axis=2), axis=1)
        weight = gap * sizes
        chosen.append(int(rng.choice(num_c, p=weight / weight.sum())) if weight.sum() > 0
                      else int(np.argmin(np.isin(np.arange(num_c), chosen))))
    means = centres[chosen].copy()
    labels = np.zeros(num_c, np.int64)
    for _ in range(50):
        labels = ((centres[:, None, :] - means[None]) ** 2).sum(axis=2).argmin(axis=1)
        mass = np.bincount(labels, sizes, minlength=k)
        used = mass > 0
        for d in range(2):
            means[used, d] = np.bincount(labels, sizes * centres[:, d], minlength=k)[used] \
                / mass[used]
    return _renumber(labels, sizes)


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
