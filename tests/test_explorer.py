"""graph_export.explorer: the embedded data, the CLI, and the page (map and ego views) in
headless Chromium with networking off."""
import base64
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import explorer_fixtures as fx
from tests.browser import cdp
from graph_export import explorer
from pipeline_common.entrypoint import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return fx.make_graph(str(tmp_path_factory.mktemp("graph")))


@pytest.fixture(scope="module")
def page_file(graph, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("explorer") / "explorer.html")
    explorer.run(["--graph", graph["graph_dir"], "--output", out])
    return out


class _Blocks(html.parser.HTMLParser):
    """Collects the raw text of each <script>/<style> block as a browser splits them."""

    def __init__(self):
        super().__init__()
        self.blocks, self._open, self.tags = [], None, []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag in ("script", "style"):
            self._open = (tag, dict(attrs), [])

    def handle_data(self, data):
        if self._open:
            self._open[2].append(data)

    def handle_endtag(self, tag):
        if self._open and tag == self._open[0]:
            self.blocks.append((tag, self._open[1], "".join(self._open[2])))
            self._open = None


def _blocks(path):
    parser = _Blocks()
    with open(path, encoding="utf-8") as handle:
        parser.feed(handle.read())
    return parser


def _payload(path):
    (data,) = [text for tag, attrs, text in _blocks(path).blocks
               if attrs.get("id") == "explorer-data"]
    return json.loads(data)


def _array(payload, name):
    return explorer.unpack_array(payload["arrays"][name])


def _text(payload, name):
    return explorer.unpack_text(payload["texts"][name])


# ---- the file itself -------------------------------------------------------------

def test_embedded_graph_matches_parquet(graph, page_file):
    payload = _payload(page_file)
    assert payload["version"] == 2
    book_index = _array(payload, "book_index")
    assert book_index.tolist() == graph["book_index"]          # includes the gap at 7
    assert _text(payload, "title") == [graph["titles"][b] for b in graph["book_index"]]
    offsets = _array(payload, "offsets")
    targets = _array(payload, "targets")
    cosine = _array(payload, "cosine")
    co_readers = _array(payload, "co_readers")
    shared_authors = _array(payload, "shared_authors")
    shelves = _array(payload, "shared_shelves")
    for row, index in enumerate(book_index):
        expected = fx.top_neighbours(graph["graph_dir"], int(index), count=graph["k"])
        got = [(int(book_index[targets[e]]), float(cosine[e]))
               for e in range(offsets[row], offsets[row + 1])]
        assert [t for t, _ in got] == [t for t, _ in expected]
        np.testing.assert_allclose([c for _, c in got], [c for _, c in expected], rtol=0, atol=0)
        for e in range(offsets[row], offsets[row + 1]):     # the reasons ride with each edge
            want = fx.edge_reason(row, int(targets[e]), graph["cluster"])
            shelf = payload["shelf_names"][shelves[e]] if shelves[e] >= 0 else ""
            assert (int(co_readers[e]), int(shared_authors[e]), shelf) == want


def test_map_columns(graph, page_file):
    payload = _payload(page_file)
    x, y = _array(payload, "x"), _array(payload, "y")
    assert x.dtype == np.uint16 and x.min() == 0 and max(x.max(), y.max()) == 65535
    import pyarrow.parquet as pq
    nodes = pq.read_table(os.path.join(graph["graph_dir"], "nodes.parquet")).to_pandas()
    # Positions keep the layout's geometry (one scale on both axes), to 16 bits.
    span = max(np.ptp(nodes.x), np.ptp(nodes.y))
    np.testing.assert_allclose(x / 65535, (nodes.x - nodes.x.min()) / span, atol=1e-4)
    np.testing.assert_allclose(y / 65535, (nodes.y - nodes.y.min()) / span, atol=1e-4)
    sizes = _array(payload, "size")
    assert sizes.dtype == np.uint8 and sizes.min() == 0 and sizes.max() == 255
    assert sizes[np.argmax(nodes.ratings_count)] == 255
    groups = payload["groups"]
    assert groups["community"]["name"] == fx.COMMUNITY_NAMES
    assert groups["region"]["name"] == fx.REGION_NAMES
    assert groups["community"]["parent"] == [0, 0, 1, 1]
    assert _array(payload, "community").tolist() == graph["cluster"]
    assert _array(payload, "region").tolist() == graph["region"]
    assert groups["community"]["size"] == [10, 10, 10, 10]


def test_a_group_is_named_on_its_biggest_patch():
    rng = np.random.default_rng(0)
    big = rng.normal(size=(300, 2)) * 500 + [50_000, 10_000]
    small = rng.normal(size=(60, 2)) * 500 + [8_000, 60_000]
    xy = np.rint(np.concatenate([small, big])).astype(np.int64)
    spots = explorer.label_spots(xy[:, 0], xy[:, 1])
    assert abs(spots[0][0] - 50_000) < 1500 and abs(spots[0][1] - 10_000) < 1500
    assert any(abs(x - 8_000) < 1500 and abs(y - 60_000) < 1500 for x, y in spots[1:])
    assert explorer.label_spots([5, 7], [1, 3]) == [(6, 2)]


def test_packing_round_trips():
    for values, dtype in (([0, 1, 2**31 - 1, -5], "<i4"), ([0.5, -1.25, 3.0e-8], "<f4"),
                          ([0, 65535, 7], "<u2"), ([], "<i4"), ([3, 255], "<u1")):
        packed = explorer.pack_array(values, dtype)
        got = explorer.unpack_array(packed)
        assert got.dtype == np.dtype(dtype) and got.tolist() == np.asarray(values, dtype).tolist()
    texts = ["a", "", None, "\U0001F409 \u05d0", "nul\0inside"]
    assert explorer.unpack_text(explorer.pack_text(texts)) == [
        "a", "", "", "\U0001F409 \u05d0", "nul\ufffdinside"]
    assert explorer.unpack_text(explorer.pack_text([])) == []


def test_titles_cannot_break_out_of_the_data_block(page_file):
    parser = _blocks(page_file)
    # Exactly the template's blocks: a style, the JSON data and the viewer script.
    assert [(tag, attrs.get("id")) for tag, attrs, _ in parser.blocks] == [
        ("style", None), ("script", "explorer-data"), ("script", None)]
    assert "img" not in parser.tags and parser.tags.count("svg") == 1
    text = open(page_file, encoding="utf-8").read()
    data = parser.blocks[1][2]
    for char in "<>&\u2028\u2029":
        assert char not in data
    assert fx.XSS_IMG not in text and fx.XSS_SCRIPT not in text
    # Only the page's own script and style may run: both pinned by hash in the CSP.
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text).group(1)
    assert "default-src 'none'" in csp
    assert explorer._csp_hash(parser.blocks[2][2]) in csp
    assert explorer._csp_hash(parser.blocks[0][2]) in csp


def test_script_safe_json_round_trips():
    value = {"t": ["</script><!--", "a&b", "\u2028\u2029", "\U0001F409", "\u05d0"]}
    text = explorer.script_safe_json(value)
    assert not set(text) & set("<>&\u2028\u2029")
    assert json.loads(text) == value


def test_max_nodes_keeps_most_read_books(graph, tmp_path):
    out = str(tmp_path / "small.html")
    summary = explorer.run(["--graph", graph["graph_dir"], "--output", out, "--max_nodes", "10"])
    payload = _payload(out)
    assert payload["n"] == summary["books"] == 10
    assert _array(payload, "book_index").tolist() == graph["book_index"][:10]
    targets = _array(payload, "targets")
    assert len(targets) == summary["edges"] and targets.max() < 10
    assert summary["dropped_edges"] == graph["n"] * graph["k"] - summary["edges"]
    assert os.listdir(tmp_path) == ["small.html"]          # no temporary file left


def test_neighbours_flag_keeps_the_nearest(graph, tmp_path):
    out = str(tmp_path / "k3.html")
    summary = explorer.run(["--graph", graph["graph_dir"], "--output", out, "--neighbours", "3"])
    payload = _payload(out)
    offsets, targets = _array(payload, "offsets"), _array(payload, "targets")
    assert np.diff(offsets).tolist() == [3] * graph["n"] and payload["neighbours"] == 3
    assert summary["trimmed_edges"] == graph["n"] * (graph["k"] - 3)
    book_index = _array(payload, "book_index")
    for row in (0, 17):
        expected = fx.top_neighbours(graph["graph_dir"], int(book_index[row]), count=3)
        assert [int(book_index[t]) for t in targets[offsets[row]:offsets[row + 1]]] == [
            t for t, _ in expected]
    assert explorer.default_neighbours(1000) is None
    assert explorer.default_neighbours(1_000_000) == 10


def test_works_without_catalogue_columns(tmp_path):
    graph = fx.make_graph(str(tmp_path / "g"), k=5, with_catalog=False, with_map=False)
    out = str(tmp_path / "e.html")
    explorer.run(["--graph", graph["graph_dir"], "--output", out])
    payload = _payload(out)
    assert "authors" not in payload["texts"] and "genre" not in payload["arrays"]
    assert payload["n"] == graph["n"] and "region" not in payload["groups"]
    assert "co_readers" not in payload["arrays"]
    # No names anywhere: a community is called after its most-read book, not "community N".
    names = payload["groups"]["community"]["name"]
    assert len(names) == 4 and all(name.startswith("around \u201c") for name in names)


def test_older_graph_files_get_names_from_their_books(tmp_path):
    graph = fx.make_graph(str(tmp_path / "g"), k=5, with_map=False)
    out = str(tmp_path / "e.html")
    explorer.run(["--graph", graph["graph_dir"], "--output", out])
    names = _payload(out)["groups"]["community"]["name"]
    # The members' most common genre and first author (data, so maybe even markup).
    assert [name.split(" \u00b7 ")[0] for name in names] == fx.GENRES
    assert all(len(name.split(" \u00b7 ")) == 2 for name in names)


@pytest.mark.parametrize("args, message, status", [
    (["--graph", "{missing}", "--output", "{out}"], "nodes.parquet not found", 1),
    (["--graph", "{graph}", "--output", "{out}", "--max_nodes", "0"], "positive integer", 2),
    (["--graph", "{bad}", "--output", "{out}"], "lacks column(s) cosine", 1),
])
def test_bad_input_is_one_clear_line(graph, tmp_path, capsys, args, message, status):
    bad = tmp_path / "bad"
    shutil.copytree(graph["graph_dir"], bad)
    import pyarrow.parquet as pq
    pq.write_table(pq.read_table(bad / "edges.parquet").drop(["cosine"]), bad / "edges.parquet")
    paths = {"missing": str(tmp_path / "nope"), "graph": graph["graph_dir"], "bad": str(bad),
             "out": str(tmp_path / "x.html")}
    with pytest.raises(SystemExit) as exit_info:   # as the command line ends
        main(explorer.run, "python -m graph_export.explorer", [a.format(**paths) for a in args])
    assert exit_info.value.code == status
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "".join(err)
    assert err[-1].startswith("python -m graph_export.explorer: error: ")
    assert not os.path.exists(paths["out"])


def test_module_entry_point(graph, tmp_path):
    out = tmp_path / "cli.html"
    ok = subprocess.run([sys.executable, "-m", "graph_export.explorer", "--graph",
                         graph["graph_dir"], "--output", str(out)], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert out.stat().st_size > 10_000
    assert "wrote" in ok.stderr                 # the INFO log line from __main__


# ---- in a real browser ---------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    binary = cdp.find_browser()
    if binary is None:
        subprocess.run([os.path.join(REPO, ".ci", "install_browser.sh")], check=False,
                       timeout=900)
        binary = cdp.find_browser()
    if binary is None:
        pytest.fail("no Chromium found and .ci/install_browser.sh could not install one "
                    "(needs apt: chromium-headless-shell or chromium)")
    browser = cdp.Browser(binary)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def page(chromium, page_file):
    """The ego view of book 0, as the link '#ego=0&depth=2' opens it."""
    tab = chromium.new_page()
    tab.navigate("file://" + page_file + "#ego=0&depth=2")
    tab.wait_for("document.body.dataset.ready === '1'")
    return tab


def _list(page):
    return page.evaluate(
        "[...document.querySelectorAll('#neighbours li[data-book-index]')].map(li =>"
        " [Number(li.dataset.bookIndex), Number(li.dataset.rank),"
        "  li.querySelector('.n-text').textContent, li.querySelector('.n-cos').textContent])")


def _search_and_choose(page, query):
    page.evaluate("document.getElementById('search').value = ''")
    page.click_selector("#search")
    page.type_text(query)
    page.wait_for("!document.getElementById('search-results').hidden &&"
                  " document.querySelector('#search-results li[data-book-index]')")
    first = page.evaluate(
        "(() => { const li = document.querySelector('#search-results li[data-book-index]');"
        " return [Number(li.dataset.bookIndex), li.querySelector('.r-title').textContent]; })()")
    page.click_selector("#search-results li[data-book-index]")
    page.wait_for(f"document.body.dataset.centre === '{first[0]}'")
    page.wait_for("document.body.dataset.animating !== '1'")
    return first


def _check_list_is_top10(page, graph, index):
    expected = fx.top_neighbours(graph["graph_dir"], index, count=10)
    shown = _list(page)
    assert [row[0] for row in shown] == [t for t, _ in expected]
    assert [row[1] for row in shown] == list(range(1, 11))
    assert [row[2] for row in shown] == [graph["titles"][t] for t, _ in expected]
    assert [row[3] for row in shown] == [f"{c:.3f}" for _, c in expected]
    # Each neighbour says why: co-readers, a shared author, the shelves both carry.
    row_of = {b: i for i, b in enumerate(graph["book_index"])}
    whys = page.evaluate("[...document.querySelectorAll('#neighbours li[data-book-index]')]"
                         ".map(li => li.querySelector('.n-why').textContent)")
    assert whys == [fx.reason_text(*fx.edge_reason(row_of[index], row_of[t], graph["cluster"]))
                    for t, _ in expected]


def test_loads_offline_with_nothing_but_the_file(page, page_file):
    urls = [e["request"]["url"].split("#")[0]
            for e in page.events("Network.requestWillBeSent")]
    assert urls == ["file://" + page_file]
    assert page.events("Runtime.exceptionThrown") == []
    errors = [e["entry"]["text"] for e in page.events("Log.entryAdded")
              if e["entry"]["level"] == "error"]
    assert errors == []                         # a CSP violation would be logged here
    assert page.evaluate("window.bookExplorer.n") == 40
    assert page.evaluate("window.bookExplorer.view()") == "ego"
    # Opens on the book the link names at depth 2, slider range 1..4.
    assert page.evaluate("[document.body.dataset.centre, document.body.dataset.depth,"
                         " document.getElementById('depth').min,"
                         " document.getElementById('depth').max]") == ["0", "2", "1", "4"]


def _colour_by(page, mode):
    page.evaluate("(() => { const s = document.getElementById('colour-by'); s.value = %s;"
                  " s.dispatchEvent(new Event('change')); })()" % json.dumps(mode))
    return page.evaluate("document.getElementById('legend').textContent")


def test_colour_by_genre(page):
    options = page.evaluate("[...document.getElementById('colour-by').options].map(o => o.value)")
    assert options == ["region", "community", "genre"]
    legend = _colour_by(page, "genre")
    assert any(genre in legend for genre in fx.GENRES) and "community" not in legend
    legend = _colour_by(page, "community")
    # Names, never "community N"; a name with markup in it is text.
    assert any(name in legend for name in fx.COMMUNITY_NAMES)
    assert not re.search(r"community \d", legend)
    assert any(name in _colour_by(page, "region") for name in fx.REGION_NAMES)


def test_search_shows_top10_from_edges(page, graph):
    index, title = _search_and_choose(page, "wuthering")
    assert title == "Wuthering Heights" and graph["titles"][index] == title
    assert page.evaluate("document.getElementById('centre-title').textContent") == title
    _check_list_is_top10(page, graph, index)
    # Keyboard: type, arrow down to the second hit, Enter.
    page.evaluate("document.getElementById('search').value = ''")
    page.click_selector("#search")
    page.type_text("the")
    page.wait_for("document.querySelectorAll('#search-results li[data-book-index]').length > 2")
    second = int(page.evaluate(
        "document.querySelectorAll('#search-results li[data-book-index]')[1].dataset.bookIndex"))
    page.press("ArrowDown", key_code=40)
    page.press("Enter", key_code=13)
    page.wait_for(f"document.body.dataset.centre === '{second}'")
    assert page.evaluate("document.getElementById('search-results').hidden")
    _check_list_is_top10(page, graph, second)
    # Accent-insensitive, RTL and multi-word look-ups find their books.
    index_of = {title: index for index, title in graph["titles"].items()}
    assert page.evaluate("window.bookExplorer.search('miserables')") == [
        index_of["Les Mis\u00e9rables"]]
    arabic = page.evaluate("window.bookExplorer.search('\u0627\u0644\u0639\u0632\u0644\u0629')")
    assert arabic == [index_of[fx.NASTY_TITLES[4]]]
    assert page.evaluate("window.bookExplorer.search('potter azkaban')") == [
        index_of["Harry Potter and the Prisoner of Azkaban"]]
    # Prefix matches come before other substring matches.
    assert page.evaluate("window.bookExplorer.search('the')")[:2] == [
        index_of["The Hobbit"], index_of["The Fellowship of the Ring"]]


def _hittable_node(page, depth, among=None):
    """(book_index, x, y) of a node at `depth` (and in `among`) on top at its own centre."""
    page.wait_for("document.body.dataset.animating !== '1'")
    found = page.evaluate(
        "((among) => {"
        " for (const g of document.querySelectorAll('#graph .node[data-depth=\"%d\"]')) {"
        " if (among && !among.includes(Number(g.dataset.bookIndex))) continue;"
        " const r = g.querySelector('circle').getBoundingClientRect();"
        " const x = r.x + r.width / 2, y = r.y + r.height / 2;"
        " const hit = document.elementFromPoint(x, y);"
        " if (hit && hit.closest('.node') === g) return [Number(g.dataset.bookIndex), x, y]; }"
        " return null; })(%s)" % (depth, json.dumps(among)))
    assert found, f"no visible node at depth {depth}"
    return found


def test_clicking_a_node_recentres(page, graph):
    before = int(page.evaluate("document.body.dataset.centre"))
    target, x, y = _hittable_node(page, 1)
    assert target != before
    page.click(x, y)
    page.wait_for(f"document.body.dataset.centre === '{target}'")
    page.wait_for("document.body.dataset.animating !== '1'")
    centre_node = page.evaluate("document.querySelector('#graph .node.centre').dataset.bookIndex")
    assert centre_node == str(target)
    _check_list_is_top10(page, graph, target)
    # Re-centring from the list works the same way.
    second = _list(page)[1][0]
    page.click_selector(f'#neighbours li[data-book-index="{second}"]')
    page.wait_for(f"document.body.dataset.centre === '{second}'")
    _check_list_is_top10(page, graph, second)


def test_hover_shows_book_and_cosine(page, graph):
    page.wait_for("document.body.dataset.animating !== '1'")
    centre = int(page.evaluate("document.body.dataset.centre"))
    first, x, y = _hittable_node(page, 1)
    cosine = dict(fx.top_neighbours(graph["graph_dir"], centre, count=graph["k"]))[first]
    page.mouse_move(x, y)
    page.wait_for(f"document.getElementById('tooltip').dataset.bookIndex === '{first}'")
    tip = page.evaluate("['title','authors','ratings','cosine'].map(p =>"
                        " document.getElementById('tooltip-' + p).textContent)")
    assert tip[0] == graph["titles"][first]
    assert tip[1].startswith("Author ") or tip[1] == fx.XSS_AUTHOR or tip[1] == ""
    assert "ratings" in tip[2]
    assert tip[3] == f"cosine to centre: {cosine:.3f}"
    # A book two hops out that neither list names: only an upper bound is known.
    edges = {}
    for index in graph["book_index"]:
        edges[index] = fx.top_neighbours(graph["graph_dir"], index, count=graph["k"])
    far = [int(v) for v in page.evaluate(
        "[...document.querySelectorAll('#graph .node[data-depth=\"2\"]')]"
        ".map(g => g.dataset.bookIndex)")]
    far = [v for v in far if v not in dict(edges[centre]) and centre not in dict(edges[v])]
    assert far, "fixture should give a depth-2 book outside both lists"
    page.mouse_move(5, 5)
    book, x, y = _hittable_node(page, 2, among=far)
    bound = min(edges[centre][-1][1], edges[book][-1][1])
    page.mouse_move(x, y)
    page.wait_for(f"document.getElementById('tooltip').dataset.bookIndex === '{book}'")
    assert page.evaluate("document.getElementById('tooltip-cosine').textContent") == (
        f"cosine to centre: \u2264 {bound:.3f} (outside both top-k lists)")
    page.mouse_move(5, 5)
    page.wait_for("document.getElementById('tooltip').hidden")


def test_depth_slider(page, graph):
    page.evaluate("(() => { const d = document.getElementById('depth');"
                  " d.value = 1; d.dispatchEvent(new Event('input')); })()")
    assert page.evaluate("document.body.dataset.shown") == str(1 + graph["k"])
    page.evaluate("document.getElementById('depth').focus()")   # then real key presses
    page.press("ArrowRight", key_code=39)
    page.press("ArrowRight", key_code=39)
    page.wait_for("document.body.dataset.depth === '3'")
    assert page.evaluate("document.getElementById('depth-value').textContent") == "3"
    assert int(page.evaluate("document.body.dataset.shown")) > 1 + graph["k"]
    page.evaluate("(() => { const d = document.getElementById('depth');"
                  " d.value = 2; d.dispatchEvent(new Event('input')); })()")


def test_titles_and_authors_run_nothing(page, graph, tmp_path_factory):
    index, title = _search_and_choose(page, "onerror")
    assert title == fx.XSS_IMG
    assert page.evaluate("document.getElementById('centre-title').textContent") == fx.XSS_IMG
    assert page.evaluate("document.getElementById('centre-authors').textContent") == fx.XSS_AUTHOR
    index2, title2 = _search_and_choose(page, "</script>")
    assert title2 == fx.XSS_SCRIPT
    # Walk every shown book through the tooltip too.
    page.evaluate("document.getElementById('depth').value = 4;"
                  " document.getElementById('depth').dispatchEvent(new Event('input'))")
    time.sleep(0.2)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 2
    assert page.evaluate("document.querySelectorAll('svg').length") == 1
    assert page.events("Page.javascriptDialogOpening") == []
    shown = page.evaluate(
        "[...document.querySelectorAll('#graph .node text')].map(t => t.textContent)")
    assert any(text.startswith("</script>") for text in shown)
    page.evaluate("document.getElementById('depth').value = 2;"
                  " document.getElementById('depth').dispatchEvent(new Event('input'))")


def test_the_harness_would_see_an_injection(chromium, tmp_path):
    """Control: markup like the fixture's, parsed as HTML, does set the flag and alert."""
    bad = tmp_path / "injected.html"
    bad.write_text("<!DOCTYPE html><body><div id=t></div><script>"
                   "document.getElementById('t').innerHTML = %s;</script>"
                   % json.dumps(fx.XSS_IMG).replace("<", "\\u003c"), encoding="utf-8")
    tab = chromium.new_page(fresh=True)
    try:
        tab.navigate("file://" + str(bad))
        tab.wait_for("window.__pwned === 1")
        chromium.wait_event("Page.javascriptDialogOpening",
                            lambda params: params.get("message") == "1", timeout=10)
    finally:
        tab.close()


def test_screenshot(page, tmp_path_factory):
    page.evaluate("window.bookExplorer.setCentre(0)")
    page.wait_for("document.body.dataset.animating !== '1'")
    out = os.environ.get("EXPLORER_SCREENSHOT") or str(
        tmp_path_factory.mktemp("shot") / "explorer.png")
    page.screenshot(out)
    with open(out, "rb") as handle:
        head = handle.read(8)
    assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(out) > 20_000


def test_a_cut_page_says_how_many_books_it_holds(chromium, graph, page, tmp_path):
    assert page.evaluate("document.getElementById('cut').hidden") is True
    out = str(tmp_path / "cut.html")
    summary = explorer.run(["--graph", graph["graph_dir"], "--output", out, "--max_nodes", "10"])
    tab = chromium.new_page()
    tab.navigate("file://" + out)
    tab.wait_for("document.body.dataset.ready === '1'")
    text = tab.evaluate("document.getElementById('cut').hidden ? ''"
                        " : document.getElementById('cut').textContent")
    assert f"holds the 10 most-read of {graph['n']:,} books" in text
    assert f"{summary['dropped_edges']:,} links to the other books are left out" in text


# ---- the whole map (the default view) ----------------------------------------------

@pytest.fixture(scope="module")
def map_page(chromium, page_file):
    tab = chromium.new_page(fresh=True)
    tab.navigate("file://" + page_file)
    tab.wait_for("document.body.dataset.ready === '1'")
    return tab


def _canvas_colours(page, tmp_path):
    """(distinct point colours, share of the canvas's width and height they span) on screen."""
    from PIL import Image
    shot = page.screenshot(str(tmp_path / "map.png"))
    box = page.evaluate("(() => { const r = document.getElementById('map')"
                        ".getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })()")
    x0, y0, w, h = (int(v) for v in box)
    image = np.asarray(Image.open(shot).convert("RGB"))[y0 + 60:y0 + h, x0:x0 + w - 60]
    pixels = image.reshape(-1, 3).astype(int)
    grey = (pixels.max(axis=1) - pixels.min(axis=1)) < 40      # background, text, outlines
    ys, xs = np.nonzero(~grey.reshape(image.shape[:2]))
    colours = {tuple(p // 32) for p in pixels[~grey]}
    spread = ((xs.max() - xs.min()) / image.shape[1], (ys.max() - ys.min()) / image.shape[0]) \
        if len(xs) else (0, 0)
    return colours, spread


def test_map_is_the_default_view_and_draws(map_page, tmp_path):
    page = map_page
    assert page.evaluate("[bookExplorer.view(), bookExplorer.webgl(), bookExplorer.selected()]") \
        == ["map", True, -1]
    assert page.events("Runtime.exceptionThrown") == []
    assert [e["entry"]["text"] for e in page.events("Log.entryAdded")
            if e["entry"]["level"] == "error"] == []
    assert int(page.evaluate("document.body.dataset.frames")) >= 1
    _colour_by(page, "community")
    page.wait_for("bookExplorer.drawNow() >= 0")
    colours, spread = _canvas_colours(page, tmp_path)
    assert len(colours) >= 4 and min(spread) > 0.6      # four communities, across the map
    # The whole map is labelled with region names (text, not markup).
    labels = page.evaluate("bookExplorer.labels()")
    assert sorted(label["text"] for label in labels if label["kind"] == "region") == sorted(
        fx.REGION_NAMES)
    legend = page.evaluate("document.getElementById('legend').textContent")
    assert all(name[:39] in legend for name in fx.COMMUNITY_NAMES)   # long ones cut with …
    _colour_by(page, "region")


def _map_choose(page, query):
    page.evaluate("document.getElementById('search').value = '';"
                  " document.getElementById('search-results').replaceChildren()")
    page.click_selector("#search")
    page.type_text(query)
    page.wait_for("document.querySelector('#search-results li[data-book-index]')")
    index = int(page.evaluate(
        "document.querySelector('#search-results li[data-book-index]').dataset.bookIndex"))
    page.click_selector("#search-results li[data-book-index]")
    page.wait_for(f"bookExplorer.selected() === {index}")
    page.wait_for("document.body.dataset.animating === '0'")
    return index


def test_map_search_flies_to_the_book_and_its_neighbours(map_page, graph):
    page = map_page
    index = _map_choose(page, "wuthering")
    assert graph["titles"][index] == "Wuthering Heights"
    top10 = [t for t, _ in fx.top_neighbours(graph["graph_dir"], index, count=10)]
    assert page.evaluate("bookExplorer.highlighted()") == [index] + top10
    assert page.evaluate("bookExplorer.highlightedEdges()") > 10
    # The camera is on the book, and every highlighted book is on screen with its title.
    x, y = page.evaluate(f"bookExplorer.screenOf({index})")
    cx, cy = page.centre_of("#map")
    assert abs(x - cx) < 2 and abs(y - cy) < 2
    box = page.evaluate("(() => { const r = document.getElementById('map')"
                        ".getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })()")
    for book in [index] + top10:
        bx, by = page.evaluate(f"bookExplorer.screenOf({book})")
        assert box[0] <= bx <= box[2] and box[1] <= by <= box[3]
    titled = [label["book"] for label in page.evaluate("bookExplorer.labels()")
              if label["kind"] == "title"]
    assert titled[0] == index
    assert page.evaluate("document.getElementById('centre-title').textContent") == \
        "Wuthering Heights"
    _check_list_is_top10(page, graph, index)
    assert f"book={index}" in page.evaluate("location.hash")
    # Hovering a neighbour on the map says why it is one.
    row_of = {b: i for i, b in enumerate(graph["book_index"])}
    for book in top10[:3]:
        bx, by = page.evaluate(f"bookExplorer.screenOf({book})")
        page.mouse_move(bx, by)
        page.wait_for(f"document.getElementById('tooltip').dataset.bookIndex === '{book}'")
        assert page.evaluate("document.getElementById('tooltip-cosine').textContent") == \
            fx.reason_text(*fx.edge_reason(row_of[index], row_of[book], graph["cluster"]))


def test_map_click_opens_the_panel_and_back_returns(map_page, graph):
    page = map_page
    before = page.evaluate("bookExplorer.selected()")
    assert before >= 0
    page.evaluate("bookExplorer.setCamera(...Object.values(bookExplorer.home()).slice(0, 2), 0)")
    # A book away from the highlighted ones, on top at its own point.
    target = next(b for b in graph["book_index"][::-1]
                  if b not in page.evaluate("bookExplorer.highlighted()"))
    page.evaluate("bookExplorer.drawNow()")
    x, y = page.evaluate(f"bookExplorer.screenOf({target})")
    assert page.evaluate(f"document.elementFromPoint({x}, {y}).id") == "map"
    page.mouse_move(x, y)
    page.wait_for(f"document.getElementById('tooltip').dataset.bookIndex === '{target}'")
    page.click(x, y)
    page.wait_for(f"bookExplorer.selected() === {target}")
    page.wait_for("document.body.dataset.animating === '0'")
    assert page.evaluate("document.getElementById('centre-title').textContent") == \
        graph["titles"][target]
    # Like a search, the click leaves the book and its neighbours all on screen.
    box = page.evaluate("(() => { const r = document.getElementById('map')"
                        ".getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })()")
    for book in page.evaluate("bookExplorer.highlighted()"):
        bx, by = page.evaluate(f"bookExplorer.screenOf({book})")
        assert box[0] <= bx <= box[2] and box[1] <= by <= box[3]
    _check_list_is_top10(page, graph, target)
    # Into the ego view of that book, and back twice: the map, then the book before.
    page.click_selector("#open-ego")
    page.wait_for("bookExplorer.view() === 'ego'")
    assert page.evaluate("document.body.dataset.centre") == str(target)
    assert page.evaluate("location.hash") == f"#ego={target}&depth=2"
    page.evaluate("history.back()")
    page.wait_for(f"bookExplorer.view() === 'map' && bookExplorer.selected() === {target}")
    page.evaluate("history.back()")
    page.wait_for(f"bookExplorer.selected() === {before}")
    # Clicking empty map clears the choice.
    page.evaluate("bookExplorer.setCamera(-0.15, -0.15, 0)")
    page.evaluate("bookExplorer.drawNow()")
    x, y = page.centre_of("#map")
    page.click(x - 300, y - 200)
    page.wait_for("bookExplorer.selected() === -1")


def test_map_pan_zoom_and_titles_that_do_not_overlap(map_page):
    page = map_page
    page.evaluate("bookExplorer.setCamera(...Object.values(bookExplorer.home()).slice(0, 2), 0)")
    x, y = page.centre_of("#map")
    z0 = page.evaluate("bookExplorer.camera().z")
    page.call("Input.dispatchMouseEvent", type="mouseWheel", x=x, y=y, deltaX=0, deltaY=-300)
    page.wait_for(f"bookExplorer.camera().z > {z0 + 0.3}")
    cam = page.evaluate("bookExplorer.camera()")
    page.mouse_move(x, y)                                  # drag 120 px to the right
    page.call("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left",
              buttons=1, clickCount=1)
    for step in range(1, 7):
        page.call("Input.dispatchMouseEvent", type="mouseMoved", x=x + 20 * step, y=y,
                  button="left", buttons=1)
    page.call("Input.dispatchMouseEvent", type="mouseReleased", x=x + 120, y=y, button="left",
              buttons=0, clickCount=1)
    moved = page.evaluate("bookExplorer.camera()")
    assert moved["cx"] < cam["cx"] and abs(moved["cy"] - cam["cy"]) < 1e-9
    page.click_selector("#zoom-in")
    page.wait_for(f"bookExplorer.camera().z > {moved['z'] + 0.9}")
    page.wait_for("document.body.dataset.animating === '0'")
    page.click_selector("#zoom-reset")
    page.wait_for("document.body.dataset.animating === '0' && bookExplorer.camera().z === 0")
    assert page.evaluate("bookExplorer.labels().filter(l => l.kind === 'title').length") == 0
    # A little closer, community names join the region names.
    page.evaluate("bookExplorer.setCamera(...Object.values(bookExplorer.home()).slice(0, 2), 0.9)")
    page.evaluate("bookExplorer.drawNow()")
    labels = page.evaluate("bookExplorer.labels()")
    communities = [label["text"].rstrip("\u2026") for label in labels
                   if label["kind"] == "community"]
    assert communities and all(any(name.startswith(text) for name in fx.COMMUNITY_NAMES)
                               for text in communities)
    assert "title" not in {label["kind"] for label in labels}
    # Zoomed in to titles: labels appear, and none overlaps another.
    page.evaluate("bookExplorer.setCamera(0.2, 0.8, bookExplorer.camera().titleZoom + 0.3)")
    page.evaluate("bookExplorer.drawNow()")
    assert page.evaluate("bookExplorer.labels().filter(l => l.kind === 'title').length") >= 3
    rects = page.evaluate("[...document.querySelectorAll('#map-labels .lbl:not([hidden])')]"
                          ".map(e => { const r = e.getBoundingClientRect();"
                          " return [r.left, r.top, r.right, r.bottom]; })")
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    assert "#map=0.20000,0.80000," in page.evaluate(
        "new Promise(r => setTimeout(() => r(location.hash), 400))", await_promise=True)


def test_map_hostile_title_is_text(map_page):
    page = map_page
    index = _map_choose(page, "onerror")
    assert page.evaluate("document.getElementById('centre-title').textContent") == fx.XSS_IMG
    assert page.evaluate("document.getElementById('centre-authors').textContent") == fx.XSS_AUTHOR
    labels = page.evaluate("[...document.querySelectorAll('#map-labels .lbl:not([hidden])')]"
                           ".map(e => [e.dataset.bookIndex, e.textContent, e.children.length])")
    assert [str(index), fx.XSS_IMG[:33] + "\u2026", 0] in labels
    x, y = page.evaluate(f"bookExplorer.screenOf({index})")
    page.mouse_move(x, y)
    page.wait_for(f"document.getElementById('tooltip').dataset.bookIndex === '{index}'")
    assert page.evaluate("document.getElementById('tooltip-title').textContent") == fx.XSS_IMG
    index2 = _map_choose(page, "</script>")
    assert page.evaluate("document.getElementById('centre-title').textContent") == fx.XSS_SCRIPT
    meta = page.evaluate("document.getElementById('centre-meta').textContent")
    assert fx.COMMUNITY_NAMES[2] in meta or index2 % 4 != 2
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('img, i, b').length") == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 2
    assert page.events("Page.javascriptDialogOpening") == []


def test_a_link_opens_the_same_place(chromium, map_page, graph):
    page = map_page
    index = _map_choose(page, "dune")
    page.evaluate("new Promise(r => setTimeout(r, 400))", await_promise=True)
    link, cam = page.evaluate("[location.href, bookExplorer.camera()]")
    tab = chromium.new_page(fresh=True)
    try:
        tab.navigate(link)
        tab.wait_for("document.body.dataset.ready === '1'")
        assert tab.evaluate("bookExplorer.selected()") == index
        got = tab.evaluate("bookExplorer.camera()")
        assert abs(got["cx"] - cam["cx"]) < 1e-4 and abs(got["z"] - cam["z"]) < 0.01
    finally:
        tab.close()


def test_map_of_older_graph_files(chromium, tmp_path):
    graph = fx.make_graph(str(tmp_path / "g"), k=5, with_map=False)
    out = str(tmp_path / "old.html")
    explorer.run(["--graph", graph["graph_dir"], "--output", out])
    tab = chromium.new_page(fresh=True)
    try:
        tab.navigate("file://" + out)
        tab.wait_for("document.body.dataset.ready === '1'")
        assert tab.evaluate("[bookExplorer.view(), bookExplorer.webgl()]") == ["map", True]
        options = tab.evaluate("[...document.getElementById('colour-by').options]"
                               ".map(o => o.value)")
        assert options == ["community", "genre"]
        legend = tab.evaluate("document.getElementById('legend').textContent")
        assert fx.GENRES[1] in legend and not re.search(r"community \d", legend)
        tab.evaluate(f"bookExplorer.select({graph['book_index'][3]}, true)")
        tab.wait_for("document.body.dataset.animating === '0'")
        assert tab.evaluate("document.querySelectorAll('#neighbours .n-why').length") == 0
        assert tab.events("Runtime.exceptionThrown") == []
    finally:
        tab.close()


def test_pinch_zooms_the_map(map_page):
    page = map_page
    page.evaluate("bookExplorer.setCamera(...Object.values(bookExplorer.home()).slice(0, 2), 0)")
    x, y = page.centre_of("#map")
    page.call("Emulation.setTouchEmulationEnabled", enabled=True, maxTouchPoints=2)
    try:
        def touch(kind, spread):
            points = [] if kind == "touchEnd" else [
                {"x": x - spread, "y": y, "id": 1}, {"x": x + spread, "y": y, "id": 2}]
            page.call("Input.dispatchTouchEvent", type=kind, touchPoints=points)
        touch("touchStart", 40)
        for spread in (60, 90, 130, 160):
            touch("touchMove", spread)
        touch("touchEnd", 0)
        z = page.evaluate("bookExplorer.camera().z")
        assert 1.5 < z < 2.5                      # fingers 80 -> 320 px apart: 4x, zoom 2
    finally:
        page.call("Emulation.setTouchEmulationEnabled", enabled=False)


def test_without_webgl_the_page_opens_the_ego_view(chromium, page_file):
    tab = chromium.new_page(fresh=True)
    try:
        tab.call("Page.addScriptToEvaluateOnNewDocument", source=(
            "HTMLCanvasElement.prototype.getContext = function () { return null; };"))
        tab.navigate("file://" + page_file)
        tab.wait_for("document.body.dataset.ready === '1'")
        assert tab.evaluate("[bookExplorer.webgl(), bookExplorer.view(),"
                            " document.body.dataset.centre]") == [False, "ego", "0"]
        assert "WebGL is not available" in tab.evaluate(
            "document.getElementById('status').textContent")
        assert tab.events("Runtime.exceptionThrown") == []
    finally:
        tab.close()
