"""The explorer on generated graphs: file size, first frame, pan/zoom frame time, memory.

    .venv/bin/python benchmarks/bench_explorer.py [--books 100000] [--max_nodes N]
        [--runs 3] [--views map,ego,ego-today] [--ego_ref REF] [--workdir DIR]

    e.g. --books 100000            the default graph-file cut
         --books 1000000 --max_nodes 1000000

Writes a generated GRAPH per size in the map contract (nodes.parquet with x/y from
clustered 2-D blobs, region and community ids and names; edges.parquet with each
book's k nearest, mostly in its own community, with co_readers, shared_authors,
shared_shelves; communities.parquet), builds explorer.html (`--max_nodes` passed on),
and opens it in headless Chromium (networking off, WebGL on SwiftShader, 1400x900),
a fresh browser per run, `--runs` times. Figures are medians over the runs:

- first frame: ms from navigation start until the first frame painted after the page
  says it is ready (body[data-ready=1], set once its first view is drawn: the whole map
  with its labels, or the ego graph), watched by a script injected over DevTools;
- pan / zoom frame: the median interval between animation frames while the camera
  moves every frame (pan at the whole map, wheel zoom in and out, pan zoomed in to
  titles): a frame the browser could not finish in time shows as a longer interval;
- draw: a full drawing of every book in view (the frame at rest), at the whole map
  and at zoom 1.5, waited for on the GPU (a 1-pixel readPixels);
- fly: search result chosen -> the camera has flown to the book and its neighbours;
- memory: peak resident memory of the renderer process and of all browser
  processes together (shared pages counted in each), sampled every 0.2 s.

The same file opened as `#ego=0&depth=2` gives the ego view's figures, and
`--ego_ref` (default: the commit before the map view) builds today's ego-only page
from that commit's graph_export/explorer.py for comparison (file size, first frame,
zoom frame, re-centre).
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmarks import machine  # noqa: E402
from graph_export import explorer  # noqa: E402
from tests.browser import cdp  # noqa: E402

EGO_REF = "8f09c94~1"   # the last commit whose explorer had only the ego view
SYLLABLES = ("an bel cor dan el fen gar hal is jor ka lin mor nel or pen quin ra sel tor "
             "ul ven wyn yar zel ith ost ern ald rim").split()
SHELF_WORDS = ("fantasy magic romance historical mystery crime thriller classics science-fiction "
               "dystopia horror young-adult contemporary poetry history biography memoir "
               "humor war adventure paranormal vampires dragons space-opera cozy-mystery "
               "literary-fiction philosophy psychology self-help").split()

# Injected before the page's own script (over DevTools, which the page's CSP does not
# govern): the first frame painted after the page marks itself ready (body[data-ready=1],
# set once the first view is drawn), the same measure for every page, today's included.
FIRST_FRAME_JS = r"""
new MutationObserver(function (records, observer) {
  if (!document.body || document.body.dataset.ready !== '1') return;
  observer.disconnect();
  requestAnimationFrame(function () {
    setTimeout(function () { window.__firstFrame = performance.now(); }, 0);
  });
}).observe(document, {attributes: true, subtree: true, attributeFilter: ['data-ready']});
"""

# Shared by the page scripts: frame intervals while `step` moves the view every frame.
PRELUDE = r"""
  const ex = window.bookExplorer, st = ex.stats || {};
  const raf = () => new Promise(r => requestAnimationFrame(r));
  const median = a => { a = a.slice().sort((x, y) => x - y); return a[a.length >> 1]; };
  async function intervals(step, n) {
    const ts = [];
    let last = await raf();
    for (let i = 0; i < n; i++) { step(i); const t = await raf(); ts.push(t - last); last = t; }
    return median(ts);
  }
  function centreOf(id) {
    const box = document.getElementById(id).getBoundingClientRect();
    return [box.left + box.width / 2, box.top + box.height / 2];
  }
"""

MAP_JS = "(async () => {" + PRELUDE + r"""
  const out = {first: window.__firstFrame, drawn: st.firstFrameMs, decode: st.decodeMs};
  const canvas = document.getElementById('map'), [mx, my] = centreOf('map');
  const home = ex.home();
  ex.setCamera(home.cx, home.cy, 0);
  out.pan = await intervals(i => ex.setCamera(home.cx + 0.003 * i, home.cy, 0), 30);
  ex.setCamera(home.cx, home.cy, 0);
  out.zoom = await intervals(i => canvas.dispatchEvent(new WheelEvent('wheel', {
    deltaY: i < 15 ? -80 : 80, clientX: mx, clientY: my, bubbles: true, cancelable: true})), 30);
  const tz = ex.camera().titleZoom + 0.5;
  out.panTitles = await intervals(i => ex.setCamera(home.cx + 0.0004 * i, home.cy, tz), 30);
  out.titles = ex.labels().filter(l => l.kind === 'title').length;
  const draws = [];
  for (let i = 0; i < 11; i++) { ex.setCamera(home.cx, home.cy, i % 2 ? 0 : 1.5); draws.push(ex.drawNow()); }
  out.draw = median(draws);
  const fly = [];
  for (const q of ['moran', 'bel', 'zel']) {
    const hit = ex.search(q, 1)[0];
    if (hit == null) continue;
    const t = performance.now();
    ex.select(hit, true);
    while (document.body.dataset.animating === '1') await raf();
    fly.push(performance.now() - t);
  }
  out.fly = median(fly);
  out.heap = performance.memory ? performance.memory.usedJSHeapSize / 1e6 : null;
  return out;
})()
"""

EGO_JS = "(async () => {" + PRELUDE + r"""
  const out = {first: window.__firstFrame};
  const svg = document.getElementById('graph'), [mx, my] = centreOf('graph');
  out.zoom = await intervals(i => svg.dispatchEvent(new WheelEvent('wheel', {
    deltaY: i < 15 ? -80 : 80, clientX: mx, clientY: my, bubbles: true, cancelable: true})), 30);
  const recentre = [];
  for (const c of [0, 17, Math.floor(ex.n / 2), ex.n - 1, 5]) {
    const t = performance.now();
    ex.setCentre(c);
    await raf();
    await new Promise(r => setTimeout(r, 0));
    recentre.push(performance.now() - t);
  }
  out.recentre = median(recentre);
  out.heap = performance.memory ? performance.memory.usedJSHeapSize / 1e6 : null;
  return out;
})()
"""


def synth_graph(graph_dir, books, k=20, seed=0):
    """A clustered map: regions of communities of books, neighbours mostly in the community."""
    rng = np.random.default_rng(seed)
    regions = int(np.clip(books // 4000, 10, 40))
    communities = max(regions, books // 200)
    # Communities: a blob each, around their region's centre; books: around their community.
    region_xy = rng.normal(size=(regions, 2)) * 10
    community_region = np.sort(rng.integers(0, regions, size=communities))
    community_xy = region_xy[community_region] + rng.normal(size=(communities, 2)) * 2.2
    weights = rng.pareto(1.2, size=communities) + 1
    community = np.sort(rng.choice(communities, size=books, p=weights / weights.sum()))
    community = community[rng.permutation(books)]
    xy = community_xy[community] + rng.normal(size=(books, 2)) * (0.25 + 0.25 * rng.random((books, 1)))
    members = np.argsort(community, kind="stable")
    size = np.bincount(community, minlength=communities)
    start = np.concatenate([[0], np.cumsum(size)])[:-1]
    own = members[start[community][:, None] + (rng.random((books, k)) * size[community][:, None])
                  .astype(np.int64)]
    far = rng.random((books, k)) < 0.08
    own[far] = rng.integers(0, books, size=int(far.sum()))
    own[own == np.arange(books)[:, None]] = (np.arange(books)[:, None].repeat(k, 1)
                                             [own == np.arange(books)[:, None]] + 1) % books
    cosine = np.sort(rng.uniform(0.35, 0.95, size=(books, k)).astype(np.float32), axis=1)[:, ::-1]
    words = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in ("", "a", "en", "is")]
    lengths = rng.integers(1, 6, size=books)
    picks = rng.integers(0, len(words), size=(books, 5))
    titles = [" ".join(words[j].title() for j in picks[i, :lengths[i]]) for i in range(books)]
    first = [w.title() for w in words[:900]]
    authors = [f"{first[a]} {first[b]}son" for a, b in rng.integers(0, 900, size=(books, 2))]
    ratings = np.sort(rng.lognormal(7, 2, size=books).astype(np.int64))[::-1]
    community_names = [" \u00b7 ".join(rng.choice(SHELF_WORDS, 2, replace=False)) +
                       f" \u00b7 {first[c % 900]}" for c in range(communities)]
    region_names = [" \u00b7 ".join(rng.choice(SHELF_WORDS, 2, replace=False))
                    for _ in range(regions)]
    region = community_region[community]
    nodes = pa.table({
        "book_index": np.arange(books, dtype=np.int64),
        "book_id": [str(v) for v in rng.integers(1, 30_000_000, size=books)],
        "title": titles,
        "authors": authors,
        "ratings_count": ratings,
        "average_rating": rng.uniform(2.5, 4.8, size=books).round(2),
        "genre": [("fiction", "romance", "fantasy, paranormal", None)[i % 4] for i in range(books)],
        "num_interactions": ratings // 3,
        "work_id": np.arange(books, dtype=np.int64),
        "in_degree": np.bincount(own.ravel(), minlength=books),
        "community": community.astype(np.int64),
        "community_name": pa.DictionaryArray.from_arrays(community.astype(np.int32),
                                                         community_names),
        "region": region.astype(np.int64),
        "region_name": pa.DictionaryArray.from_arrays(region.astype(np.int32), region_names),
        "x": xy[:, 0], "y": xy[:, 1],
    })
    shelf_lists = [""] + [", ".join(rng.choice(SHELF_WORDS, int(rng.integers(1, 4)), replace=False))
                          for _ in range(400)]
    same = community[own] == community[:, None]
    shelf_code = np.where(same, rng.integers(1, len(shelf_lists), size=(books, k)), 0)
    edges = pa.table({
        "source": np.repeat(np.arange(books, dtype=np.int64), k),
        "target": own.ravel(),
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), books),
        "cosine": cosine.ravel(),
        "co_readers": np.sort(rng.geometric(0.004, size=(books, k)), axis=1)[:, ::-1].ravel()
        .astype(np.int64),
        "shared_authors": (rng.random(books * k) < 0.05).astype(np.int32),
        "shared_shelves": pa.DictionaryArray.from_arrays(shelf_code.ravel().astype(np.int32),
                                                         shelf_lists),
    })
    table = pa.table({
        "level": ["community"] * communities + ["region"] * regions,
        "id": np.concatenate([np.arange(communities), np.arange(regions)]).astype(np.int64),
        "parent": np.concatenate([community_region, np.full(regions, -1)]).astype(np.int64),
        "name": community_names + region_names,
        "size": np.concatenate([size, np.bincount(region, minlength=regions)]).astype(np.int64),
    })
    os.makedirs(graph_dir, exist_ok=True)
    pq.write_table(nodes, os.path.join(graph_dir, "nodes.parquet"))
    pq.write_table(edges, os.path.join(graph_dir, "edges.parquet"))
    pq.write_table(table, os.path.join(graph_dir, "communities.parquet"))


class MemorySampler:
    """Peak RSS (MB) of the browser's renderer processes and of all its processes."""

    def __init__(self, root_pid):
        self.root, self.peak_renderer, self.peak_total = root_pid, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self):
        parent = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as handle:
                        parent[int(name)] = int(handle.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        tree, grew = {self.root}, True
        while grew:
            grew = False
            for pid, ppid in parent.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        return tree

    def _run(self):
        while not self._stop.is_set():
            renderer = total = 0.0
            for pid in self._tree():
                try:
                    with open(f"/proc/{pid}/status") as handle:
                        rss = next(int(line.split()[1]) for line in handle
                                   if line.startswith("VmRSS")) / 1024
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        is_renderer = b"--type=renderer" in handle.read()
                except (OSError, StopIteration):
                    continue
                total += rss
                renderer += rss if is_renderer else 0
            self.peak_renderer = max(self.peak_renderer, renderer)
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(0.2)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak_renderer, self.peak_total


def measure(binary, url, script, timeout):
    """Opens url in a fresh browser, waits for the page, runs script; returns its result."""
    browser = cdp.Browser(binary)
    sampler = MemorySampler(browser.proc.pid)
    try:
        page = browser.new_page()
        page.call("Page.addScriptToEvaluateOnNewDocument", source=FIRST_FRAME_JS)
        page.navigate(url, timeout=timeout)
        page.wait_for("window.__firstFrame", timeout=timeout, interval=0.1)
        result = page.call("Runtime.evaluate", expression=script, returnByValue=True,
                           awaitPromise=True, timeout=timeout)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        out = result["result"]["value"]
    finally:
        browser.close()
        out_mem = sampler.stop()
    out["rss_renderer"], out["rss_total"] = out_mem
    return out


def old_explorer(ref, workdir):
    """graph_export/explorer.py and its explorer_web/ as of `ref`, as an importable module."""
    target = os.path.join(workdir, f"explorer-{ref.replace('~', '_').replace('/', '_')}")
    os.makedirs(target, exist_ok=True)
    source = subprocess.run(["git", "show", f"{ref}:graph_export/explorer.py"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout
    archive = subprocess.run(["git", "archive", ref, "graph_export/explorer_web"], cwd=REPO,
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", target], input=archive, check=True)
    path = os.path.join(target, "graph_export", "explorer_old.py")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(source)
    spec = importlib.util.spec_from_file_location("explorer_old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.WEB_DIR = os.path.join(target, "graph_export", "explorer_web")
    return module


def median_of(runs, key):
    values = [run[key] for run in runs if run.get(key) is not None]
    return float(np.median(values)) if values else float("nan")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", default="100000", help="comma-separated graph sizes")
    parser.add_argument("--max_nodes", type=int, default=None, help="passed to the explorer")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3, help="fresh browsers per figure")
    parser.add_argument("--ego_ref", default=EGO_REF,
                        help="git ref of today's ego-only explorer to compare ('' to skip)")
    parser.add_argument("--views", default="map,ego,ego-today",
                        help="which of map, ego, ego-today to measure")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    work = args.workdir or tempfile.mkdtemp(prefix="explorer-bench-")
    binary = cdp.find_browser()
    if binary is None:
        sys.exit("no Chromium: run .ci/install_browser.sh first")
    wanted = set(args.views.split(","))
    old = old_explorer(args.ego_ref, work) if args.ego_ref and "ego-today" in wanted else None
    rows = []
    for books in (int(s) for s in args.books.split(",")):
        graph_dir = os.path.join(work, f"graph-{books}")
        if not os.path.exists(os.path.join(graph_dir, "communities.parquet")):
            t = time.perf_counter()
            synth_graph(graph_dir, books, args.k)
            print(f"generated {books:,} books in {time.perf_counter() - t:.0f} s", flush=True)
        flags = ["--graph", graph_dir] + (["--max_nodes", str(args.max_nodes)]
                                          if args.max_nodes else [])
        out = os.path.join(work, f"explorer-{books}.html")
        t = time.perf_counter()
        summary = explorer.run(flags + ["--output", out])
        build = time.perf_counter() - t
        timeout = 60 + books / 5000
        url = "file://" + out
        views = {}
        if "map" in wanted:
            views["map"] = [measure(binary, url, MAP_JS, timeout) for _ in range(args.runs)]
        if "ego" in wanted:
            views["ego"] = [measure(binary, url + "#ego=0&depth=2", EGO_JS, timeout)
                            for _ in range(args.runs)]
        sizes = {"map": summary["bytes"], "ego": summary["bytes"]}
        if old is not None:
            old_out = os.path.join(work, f"explorer-ego-today-{books}.html")
            old_summary = old.write_explorer(graph_dir, old_out, max_nodes=args.max_nodes)
            sizes["ego today"] = old_summary["bytes"]
            views["ego today"] = [measure(binary, "file://" + old_out, EGO_JS, timeout)
                                  for _ in range(args.runs)]
        for name, runs in views.items():
            rows.append({"books": summary["books"], "edges": summary["edges"], "view": name,
                         "mb": sizes[name] / 1e6, "build_s": build if name != "ego today" else None,
                         **{key: median_of(runs, key) for key in
                            ("first", "decode", "pan", "zoom", "panTitles", "titles", "draw",
                             "fly", "recentre", "heap", "rss_renderer", "rss_total")},
                         "runs": runs})
            print(json.dumps({key: value for key, value in rows[-1].items() if key != "runs"}),
                  flush=True)
    print(f"\n{machine.describe()}; Chromium {binary}, SwiftShader WebGL, {args.runs} runs "
          "each (medians)\n")
    header = ("books", "view", "file MB", "first frame ms", "pan frame ms", "zoom frame ms",
              "pan zoomed-in ms", "draw+GPU ms", "fly ms", "re-centre ms", "renderer RSS MB",
              "all browser RSS MB")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))

    def fmt(value, digits=0):
        return "-" if value is None or value != value else f"{value:,.{digits}f}"

    for row in rows:
        print(" | ".join([f"{row['books']:,}", row["view"], fmt(row["mb"], 1), fmt(row["first"]),
                          fmt(row["pan"], 1), fmt(row["zoom"], 1), fmt(row["panTitles"], 1),
                          fmt(row["draw"], 1), fmt(row["fly"]), fmt(row["recentre"], 1),
                          fmt(row["rss_renderer"]), fmt(row["rss_total"])]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    from benchmarks import results
    results.main_recorded(main, "Explorer in Chromium")
