"""Explorer responsiveness on synthetic graphs: build time, file size, load and interaction times.

    .venv/bin/python -m benchmarks.bench_explorer [--books 20000,100000] [--k 20]

Writes a synthetic GRAPH (nodes.parquet, edges.parquet as in docs/artifacts.md
section 3) per size, builds explorer.html, opens it in headless Chromium
(networking off) and measures, inside the page: load (parse + decode + first
render), the idle-time title-index build, type-ahead searches, ego-graph
renders at depth 1..4 and re-centres (each timed from the event to the next
rendered frame), a node click with its transition, and the slowest animation
frame seen during all of these (PerformanceObserver 'long-animation-frame',
which lists only frames over 50 ms; 0 means none). The first size is the
baseline; the last column is each size's worst interaction time over it.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from graph_export import explorer  # noqa: E402
from tests.browser import cdp  # noqa: E402

WORDS = ("night shadow river crown glass winter garden empire secret house storm daughter "
         "letters island summer fire city queen silent stone wolf ghost dream blood").split()

MEASURE_JS = r"""
(async () => {
  const ex = window.bookExplorer, st = ex.stats, out = {load: st.loadMs};
  const frames = [];
  const obs = new PerformanceObserver(list => list.getEntries().forEach(e => frames.push(e.duration)));
  obs.observe({type: 'long-animation-frame', buffered: false});
  // One interaction: run it, then wait until the next frame has been rendered.
  const painted = () => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  const step = async fn => { const t = performance.now(); fn(); await painted(); return performance.now() - t; };
  const all = {};
  const worst = async (fns, name) => {
    const ts = [];
    for (const fn of fns) ts.push(await step(fn));
    ts.sort((a, b) => a - b);
    all[name] = ts[Math.floor(ts.length / 2)];
    return ts[ts.length - 1];
  };
  await painted();
  await new Promise(r => setTimeout(r, 300));   // let the idle-time title index finish
  frames.length = 0;
  out.search = await worst(['night', 'the secret', 'garden of', 'xq', 'storm queen', 'title 99', 'e']
    .map(q => () => ex.search(q)), 'search');
  const input = document.getElementById('search');
  out.typeahead = await worst(['w', 'wi', 'win', 'wint', 'winte', 'winter'].map(q => () => {
    input.value = q; input.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'})); }), 'typeahead');
  const depth = document.getElementById('depth');
  const moves = [];
  for (const c of [0, 17, Math.floor(ex.n / 2), ex.n - 1]) {
    moves.push(() => ex.setCentre(c));               // re-centre at depth 4, then
    for (const d of [1, 2, 3, 4]) moves.push(() => {  // move the slider 1 -> 4
      depth.value = d; depth.dispatchEvent(new Event('input')); });
  }
  out.render = await worst(moves, 'render');
  out.median = all;
  out.shown4 = Number(document.body.dataset.shown);
  // A real click on a node: re-centre with the animated transition.
  const node = () => document.querySelector('#graph .node[data-depth="1"] circle');
  const t = performance.now();
  node().dispatchEvent(new MouseEvent('click', {bubbles: true}));
  while (document.body.dataset.animating === '1') await painted();
  out.click = performance.now() - t;
  await painted();
  out.frame = frames.length ? Math.max(...frames) : 0;
  out.frames = frames.length;
  return out;
})()
"""


def synth_graph(graph_dir, books, k, seed=0):
    """Clustered synthetic top-k graph: most neighbours in the book's own cluster."""
    rng = np.random.default_rng(seed)
    clusters = max(8, books // 400)
    cluster = rng.integers(0, clusters, size=books)
    members = [np.flatnonzero(cluster == c) for c in range(clusters)]
    targets = np.empty((books, k), dtype=np.int64)
    for c, ids in enumerate(members):
        if len(ids) == 0:
            continue
        picks = ids[rng.integers(0, len(ids), size=(len(ids), k))]
        targets[ids] = picks
    outside = rng.random((books, k)) < 0.15
    targets[outside] = rng.integers(0, books, size=int(outside.sum()))
    self_loop = targets == np.arange(books)[:, None]
    targets[self_loop] = (targets[self_loop] + 1) % books
    cosine = np.sort(rng.uniform(0.35, 0.95, size=(books, k)).astype(np.float32), axis=1)[:, ::-1]
    titles = [" ".join(WORDS[j] for j in rng.integers(0, len(WORDS), size=3)).title() + f" {i}"
              for i in range(books)]
    nodes = pa.table({
        "book_index": np.arange(books, dtype=np.int64),
        "book_id": [str(10_000 + i) for i in range(books)],
        "title": titles,
        "authors": [f"Author {i % 5000}" for i in range(books)],
        "ratings_count": rng.integers(1, 2_000_000, size=books),
        "average_rating": rng.uniform(2.5, 4.8, size=books).round(2),
        "genre": [("fiction", "romance", "fantasy, paranormal", None)[i % 4] for i in range(books)],
        "in_degree": np.bincount(targets.ravel(), minlength=books),
        "community": cluster,
        "x": rng.normal(size=books), "y": rng.normal(size=books),
    })
    edges = pa.table({
        "source": np.repeat(np.arange(books, dtype=np.int64), k),
        "target": targets.ravel(),
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), books),
        "cosine": cosine.ravel(),
    })
    os.makedirs(graph_dir, exist_ok=True)
    pq.write_table(nodes, os.path.join(graph_dir, "nodes.parquet"))
    pq.write_table(edges, os.path.join(graph_dir, "edges.parquet"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", default="20000,100000")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.books.split(",")]
    work = args.workdir or tempfile.mkdtemp(prefix="explorer-bench-")
    binary = cdp.find_browser()
    if binary is None:
        sys.exit("no Chromium: run .ci/install_browser.sh first")
    rows = []
    for books in sizes:
        graph_dir = os.path.join(work, f"graph-{books}")
        synth_graph(graph_dir, books, args.k)
        out = os.path.join(work, f"explorer-{books}.html")
        t = time.perf_counter()
        summary = explorer.run(["--graph", graph_dir, "--output", out])
        build = time.perf_counter() - t
        browser = cdp.Browser(binary)
        try:
            page = browser.new_page()
            t = time.perf_counter()
            page.navigate("file://" + out, timeout=120)
            page.wait_for("document.body.dataset.ready === '1'", timeout=120)
            open_s = time.perf_counter() - t
            m = page.evaluate(MEASURE_JS, await_promise=True)
        finally:
            browser.close()
        rows.append((books, summary["edges"], summary["bytes"] / 1e6, build, open_s * 1000, m))
    header = ("books", "edges", "html MB", "build s", "open ms", "first render ms",
              "search ms", "type-ahead+choose ms", "depth/centre ms", "nodes@d4",
              "click+transition ms", "slowest frame ms", "worst/base")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    base = None
    for books, edges, mb, build, open_ms, m in rows:
        worst = max(m["search"], m["typeahead"], m["render"])
        base = base or worst
        print(" | ".join([f"{books:,}", f"{edges:,}", f"{mb:.1f}", f"{build:.1f}", f"{open_ms:.0f}",
                          f"{m['load']:.0f}",
                          *(f"{m['median'][key]:.0f} / {m[key]:.0f}"
                            for key in ("search", "typeahead", "render")),
                          str(m["shown4"]),
                          f"{m['click']:.0f}", f"{m['frame']:.0f}", f"{worst / base:.2f}"]))

    print("\nsearch / type-ahead / depth-centre columns: median / worst ms, each timed from the "
          "event to the next painted frame; worst/base compares the worst interaction with the "
          "first size's.")


if __name__ == "__main__":
    main()
