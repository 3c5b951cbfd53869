// Book neighbourhood explorer: plain JavaScript, no library, no network.
// Reads the graph embedded by graph_export/explorer.py (a JSON block holding
// per-book columns and a base64 CSR adjacency of the k-nearest-neighbour lists)
// and shows the ego graph of one book at a time. Every string from the data is
// written with textContent / SVG text nodes, never parsed as markup.
(function () {
  'use strict';

  var SVG_NS = 'http://www.w3.org/2000/svg';
  var PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948',
                 '#b07aa1', '#ff9da7', '#9c755f', '#3f9bd5', '#8cd17d', '#d37295'];
  var OTHER_COLOUR = '#bab0ac';
  // Most nodes drawn for each depth: enough for k=10 at depth 2, bounded beyond.
  var NODE_BUDGET = [1, 60, 160, 260, 360];
  var SEARCH_CAP = 12;
  var MAX_CROSS_EDGES = 400;
  var BASE_RADIUS = [13, 8, 5.5, 4];   // dot radius by depth (plus a little for popularity)
  var LIST_SIZE = 10;
  var SEP = '\u0001';

  // ---- data ---------------------------------------------------------------
  var data = JSON.parse(document.getElementById('explorer-data').textContent);
  var N = data.n;
  var littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  function decode(b64, Type) {
    var bin = atob(b64);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    if (littleEndian) return new Type(bytes.buffer);
    var view = new DataView(bytes.buffer), out = new Type(bytes.length / 4);
    var isFloat = Type === Float32Array;
    for (var j = 0; j < out.length; j++) {
      out[j] = isFloat ? view.getFloat32(4 * j, true) : view.getInt32(4 * j, true);
    }
    return out;
  }

  var bookIndex = decode(data.book_index, Int32Array);   // row -> book_index (sorted)
  var offsets = decode(data.offsets, Int32Array);        // CSR: row's edges are
  var targets = decode(data.targets, Int32Array);        // offsets[row]..offsets[row+1]
  var cosines = decode(data.cosine, Float32Array);       // in rank order
  var titles = data.title;
  var authors = data.authors || null;
  var ratings = data.ratings_count || null;
  var avgRating = data.average_rating || null;
  var genres = data.genre || null;
  var genreNames = data.genre_names || [];
  var communities = data.community || null;
  var bookIds = data.book_id || null;

  function rowOf(index) {           // book_index -> row, or -1
    var lo = 0, hi = N - 1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1, v = bookIndex[mid];
      if (v === index) return mid;
      if (v < index) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
  }

  function fmtInt(v) { return v == null ? '' : Number(v).toLocaleString('en-US'); }
  function authorsOf(r) { return authors && authors[r] ? authors[r] : ''; }
  function titleOf(r) { return titles[r] || '(untitled book ' + bookIndex[r] + ')'; }
  function short(s, n) {           // cut by code points, so no emoji is split in half
    if (s.length <= n) return s;
    var cps = Array.from(s);
    return cps.length > n ? cps.slice(0, n - 1).join('') + '\u2026' : s;
  }

  // ---- colours --------------------------------------------------------------
  var colourModes = [];
  if (communities) colourModes.push('community');
  if (genres) colourModes.push('genre');
  var colourBy = colourModes[0] || 'none';
  // Communities are many, so palette slots go to the communities on screen, most
  // common first; a community keeps its slot across re-centres while it stays
  // among them, and the rest are grey. Genres are few and keep fixed colours.
  var slotOf = new Map(), lastUsed = new Array(PALETTE.length).fill(-1), paints = 0;

  function assignSlots(rows) {
    if (colourBy !== 'community') return;
    var counts = new Map();
    rows.forEach(function (r) {
      var c = communities[r];
      if (c != null) counts.set(c, (counts.get(c) || 0) + 1);
    });
    var top = Array.from(counts.keys()).sort(function (a, b) {
      return counts.get(b) - counts.get(a) || a - b;
    }).slice(0, PALETTE.length);
    paints++;
    var taken = new Set(), fresh = [];
    top.forEach(function (c) {
      var slot = slotOf.get(c);
      if (slot != null && !taken.has(slot)) { taken.add(slot); lastUsed[slot] = paints; } else fresh.push(c);
    });
    fresh.forEach(function (c) {
      var best = -1;
      for (var i = 0; i < PALETTE.length; i++) {
        if (!taken.has(i) && (best < 0 || lastUsed[i] < lastUsed[best])) best = i;
      }
      slotOf.forEach(function (slot, other) { if (slot === best) slotOf.delete(other); });
      slotOf.set(c, best);
      taken.add(best);
      lastUsed[best] = paints;
    });
    shownSlots = taken;
  }
  var shownSlots = new Set();

  function category(r) {   // [key, label] of a row under the current colouring
    if (colourBy === 'community') {
      var c = communities[r];
      return c == null ? null : [c, 'community ' + c];
    }
    if (colourBy === 'genre') {
      var g = genres[r];
      return g < 0 ? null : [g, genreNames[g]];
    }
    return null;
  }

  function colourOf(r) {
    var cat = category(r);
    if (!cat) return OTHER_COLOUR;
    if (colourBy === 'community') {
      var slot = slotOf.get(cat[0]);
      return slot != null && shownSlots.has(slot) ? PALETTE[slot] : OTHER_COLOUR;
    }
    return PALETTE[cat[0] % PALETTE.length];
  }

  // ---- search: one lower-cased haystack, positions mapped back by binary search
  var hay = null, starts = null;

  function norm(s) {
    return s.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
      .replace(/\u0001/g, ' ');
  }

  function buildSearchIndex() {
    if (hay !== null) return;
    var parts = new Array(N);
    starts = new Int32Array(N);
    var pos = 0;
    for (var i = 0; i < N; i++) {
      var t = SEP + norm(titles[i] || '');
      starts[i] = pos;
      parts[i] = t;
      pos += t.length;
    }
    hay = parts.join('');
  }

  function rowAt(pos) {
    var lo = 0, hi = N - 1;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= pos) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  // Title prefix matches first, then substring matches, then (several words) all
  // words anywhere; each tier in book_index order (most-read first). Capped.
  function search(query, cap) {
    cap = cap || SEARCH_CAP;
    var q = norm(query).trim().replace(/\s+/g, ' ');
    if (!q || N === 0) return [];
    buildSearchIndex();
    var out = [], seen = new Set();
    function scan(needle) {
      var pos = hay.indexOf(needle);
      while (pos !== -1 && out.length < cap) {
        var r = rowAt(pos);
        if (!seen.has(r)) { seen.add(r); out.push(r); }
        var next = r + 1 < N ? starts[r + 1] : hay.length;   // skip rest of this title
        pos = hay.indexOf(needle, next);
      }
    }
    scan(SEP + q);
    if (out.length < cap) scan(q);
    var words = q.split(' ').sort(function (a, b) { return b.length - a.length; });
    if (out.length < cap && words.length > 1) {
      // Walk the titles holding the longest word; keep those holding all the others.
      var pos = hay.indexOf(words[0]);
      while (pos !== -1 && out.length < cap) {
        var r = rowAt(pos), end = r + 1 < N ? starts[r + 1] : hay.length;
        if (!seen.has(r)) {
          var t = hay.slice(starts[r], end);
          if (words.every(function (w) { return t.indexOf(w) !== -1; })) { seen.add(r); out.push(r); }
        }
        pos = hay.indexOf(words[0], end);
      }
    }
    return out;
  }

  // ---- ego graph ------------------------------------------------------------
  // Out-edges only (each book's own top-k), best-first by cosine at each level,
  // within a node budget so depth 3..4 stay readable and fast.
  function egoGraph(centre, depth) {
    var k = offsets[centre + 1] - offsets[centre];
    var depthOf = new Map([[centre, 0]]), parent = new Map(), children = new Map();
    var order = [centre], frontier = [centre], reachable = 1, truncated = false;
    children.set(centre, []);
    for (var d = 1; d <= depth && frontier.length; d++) {
      var budget = Math.max(NODE_BUDGET[d], 1 + k);
      var cands = [];
      for (var f = 0; f < frontier.length; f++) {
        var u = frontier[f];
        for (var e = offsets[u]; e < offsets[u + 1]; e++) {
          if (!depthOf.has(targets[e])) cands.push(e, u);
        }
      }
      var idx = [];
      for (var c = 0; c < cands.length; c += 2) idx.push(c);
      idx.sort(function (a, b) { return cosines[cands[b]] - cosines[cands[a]] || a - b; });
      var next = [];
      for (var j = 0; j < idx.length; j++) {
        var edge = cands[idx[j]], from = cands[idx[j] + 1], v = targets[edge];
        if (depthOf.has(v)) continue;
        if (order.length >= budget) { truncated = true; break; }
        depthOf.set(v, d); parent.set(v, from); children.set(v, []);
        children.get(from).push(v);
        order.push(v); next.push(v);
      }
      frontier = next;
    }
    reachable = order.length;
    // Edges among shown books, merged per pair. Beyond MAX_CROSS_EDGES only the
    // closest non-tree links are kept: more is a hairball and slow to paint.
    var pairs = new Map(), edges = [];
    for (var i = 0; i < order.length; i++) {
      var a = order[i];
      for (var x = offsets[a]; x < offsets[a + 1]; x++) {
        var b = targets[x];
        if (!depthOf.has(b)) continue;
        var key = a < b ? a * N + b : b * N + a;
        var seenEdge = pairs.get(key);
        if (seenEdge) { seenEdge.mutual = true; continue; }
        var ed = { a: a, b: b, cos: cosines[x], mutual: false,
                   tree: parent.get(b) === a || parent.get(a) === b };
        pairs.set(key, ed);
        edges.push(ed);
      }
    }
    var tree = edges.filter(function (ed) { return ed.tree; });
    var cross = edges.filter(function (ed) { return !ed.tree; });
    if (cross.length > MAX_CROSS_EDGES) {
      cross.sort(function (p, q) { return (q.mutual - p.mutual) || (q.cos - p.cos); });
      cross.length = MAX_CROSS_EDGES;
      edges = tree.concat(cross);
    }
    return { centre: centre, depth: depth, order: order, depthOf: depthOf, parent: parent,
             children: children, edges: edges, truncated: truncated, shown: reachable };
  }

  // Radial tree layout: ring d holds depth-d books; each subtree gets an angle
  // span proportional to its leaf count, children in rank order.
  function layout(ego, width, height) {
    var pos = new Map();
    var maxDepth = 0;
    ego.depthOf.forEach(function (d) { if (d > maxDepth) maxDepth = d; });
    var leaves = new Map();
    // Subtree weight: leaf count, damped on the first ring so its (labelled)
    // books stay evenly spread even when some have many more descendants.
    function countLeaves(u) {
      var kids = ego.children.get(u) || [], n = 0;
      for (var i = 0; i < kids.length; i++) n += countLeaves(kids[i]);
      n = Math.max(1, n);
      leaves.set(u, ego.depthOf.get(u) === 1 ? 1 + Math.sqrt(n) : n);
      return n;
    }
    countLeaves(ego.centre);
    // Rings are ellipses that use the pane's width (labels need it more than height).
    var R = Math.max(60, height / 2 - 40);
    var stretch = Math.max(1, Math.min(1.45, (width / 2 - 90) / R));
    var ringR = function (d) {
      if (maxDepth === 0) return 0;
      // Inner rings get a little more room for labels.
      return R * Math.pow(d / maxDepth, 0.8);
    };
    // Crowded rings: smaller dots, and every other dot nudged in or out.
    var perRing = [], seenOnRing = [];
    ego.depthOf.forEach(function (d) { perRing[d] = (perRing[d] || 0) + 1; });
    var scale = [1], stagger = [0];
    for (var d = 1; d <= maxDepth; d++) {
      var spacing = Math.PI * (1 + stretch) * ringR(d) / Math.max(1, perRing[d] || 1);
      var want = 2 * (BASE_RADIUS[Math.min(d, 3)] + (ratings ? 3 : 0)) + 2;
      scale[d] = Math.max(0.45, Math.min(1, spacing / want));
      stagger[d] = spacing < want ? Math.min(14, BASE_RADIUS[Math.min(d, 3)] * 1.6) : 0;
      seenOnRing[d] = 0;
    }
    pos.scale = scale;
    function place(u, a0, a1) {
      var d = ego.depthOf.get(u);
      var mid = (a0 + a1) / 2, r = ringR(d);
      if (d > 0 && d === maxDepth && stagger[d]) r += (seenOnRing[d]++ % 2 ? -1 : 1) * stagger[d] / 2;
      pos.set(u, { x: stretch * r * Math.cos(mid), y: r * Math.sin(mid), angle: mid });
      var kids = ego.children.get(u) || [], a = a0, total = 0;
      for (var k = 0; k < kids.length; k++) total += leaves.get(kids[k]);
      if (d === 0 && kids.length) a = -Math.PI / 2 - Math.PI * leaves.get(kids[0]) / total;
      for (var i = 0; i < kids.length; i++) {
        var span = (d === 0 ? 2 * Math.PI : a1 - a0) * leaves.get(kids[i]) / total;
        place(kids[i], a, a + span);
        a += span;
      }
    }
    place(ego.centre, 0, 2 * Math.PI);
    pos.get(ego.centre).x = 0; pos.get(ego.centre).y = 0;
    return pos;
  }

  // ---- cosine to the centre -------------------------------------------------
  // Exact when either book lists the other; otherwise only a bound is known:
  // a book outside both top-k lists is no closer than either list's last entry.
  function cosineToCentre(v, c) {
    if (v === c) return { exact: true, value: 1 };
    for (var e = offsets[c]; e < offsets[c + 1]; e++) {
      if (targets[e] === v) return { exact: true, value: cosines[e] };
    }
    for (var f = offsets[v]; f < offsets[v + 1]; f++) {
      if (targets[f] === c) return { exact: true, value: cosines[f] };
    }
    var bound = Infinity;
    if (offsets[c + 1] > offsets[c]) bound = Math.min(bound, cosines[offsets[c + 1] - 1]);
    if (offsets[v + 1] > offsets[v]) bound = Math.min(bound, cosines[offsets[v + 1] - 1]);
    return { exact: false, value: bound };
  }

  function cosineText(v, c) {
    var res = cosineToCentre(v, c);
    if (res.exact) return 'cosine to centre: ' + res.value.toFixed(3);
    if (res.value === Infinity) return 'cosine to centre: unknown';
    return 'cosine to centre: \u2264 ' + res.value.toFixed(3) + ' (outside both top-k lists)';
  }

  // ---- DOM helpers ----------------------------------------------------------
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }
  function svgEl(tag, attrs) {
    var node = document.createElementNS(SVG_NS, tag);
    for (var name in attrs) node.setAttribute(name, attrs[name]);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  var $ = function (id) { return document.getElementById(id); };
  var svg = $('graph'), searchInput = $('search'), resultsList = $('search-results');
  var depthInput = $('depth'), depthValue = $('depth-value'), colourSelect = $('colour-by');
  var tooltip = $('tooltip'), pane = $('graph-pane');

  var viewport = svgEl('g', { id: 'viewport' });
  var edgeLayer = svgEl('g', { id: 'edge-layer' });
  var hiPath = svgEl('path', { class: 'edges-hi', id: 'edges-hi' });
  var nodeLayer = svgEl('g', { id: 'node-layer' });
  viewport.appendChild(edgeLayer);
  viewport.appendChild(hiPath);
  viewport.appendChild(nodeLayer);
  svg.appendChild(viewport);

  // ---- state & rendering ----------------------------------------------------
  var state = { centre: -1, depth: 2, ego: null, pos: null, nodeEls: new Map(),
                view: { x: 0, y: 0, k: 1 }, anim: 0, hover: -1 };
  var stats = { renders: 0, lastRenderMs: 0, maxRenderMs: 0, lastSearchMs: 0, maxSearchMs: 0,
                loadMs: 0 };

  function nodeRadius(r, d) {
    var base = BASE_RADIUS[Math.min(d, 3)];
    if (ratings && ratings[r] != null) base += Math.min(4, Math.log10(1 + ratings[r]) * 0.6);
    return d > 0 && state.pos && state.pos.scale ? base * state.pos.scale[d] : base;
  }

  function edgePath(edges, pos, filter) {
    var parts = [];
    for (var i = 0; i < edges.length; i++) {
      var e = edges[i];
      if (filter && !filter(e)) continue;
      var p = pos.get(e.a), q = pos.get(e.b);
      parts.push('M' + p.x.toFixed(1) + ' ' + p.y.toFixed(1) + 'L' + q.x.toFixed(1) + ' ' + q.y.toFixed(1));
    }
    return parts.join('');
  }

  var edgePaths = [];
  function drawEdges(pos) {
    var ego = state.ego;
    clear(edgeLayer);
    edgePaths = [];
    // Three opacity bands by cosine: one <path> each keeps thousands of edges cheap.
    var cs = ego.edges.map(function (e) { return e.cos; }).sort(function (a, b) { return a - b; });
    var lo = cs.length ? cs[Math.floor(cs.length / 3)] : 0, hi = cs.length ? cs[Math.floor(2 * cs.length / 3)] : 0;
    var bands = [
      { cls: 'edges-cross', w: 0.7, o: 0.18, f: function (e) { return !e.tree && e.cos < lo; } },
      { cls: 'edges-cross', w: 0.9, o: 0.3, f: function (e) { return !e.tree && e.cos >= lo && e.cos < hi; } },
      { cls: 'edges-cross', w: 1.1, o: 0.45, f: function (e) { return !e.tree && e.cos >= hi; } },
      { cls: 'edges-tree', w: 1.4, o: 0.75, f: function (e) { return e.tree; } }
    ];
    bands.forEach(function (b) {
      var path = svgEl('path', { class: b.cls, 'stroke-width': b.w, 'stroke-opacity': b.o,
                                 d: edgePath(ego.edges, pos, b.f) });
      edgePaths.push({ el: path, f: b.f });
      edgeLayer.appendChild(path);
    });
  }

  function labelFor(r, d, maxDepth) {
    if (d === 0) return short(titleOf(r), 48);
    if (d === 1 && maxDepth <= 2) return short(titleOf(r), 30);
    if (d === 1 && maxDepth === 3) return short(titleOf(r), 20);
    return null;
  }

  function drawNodes(pos) {
    var ego = state.ego;
    clear(nodeLayer);
    state.nodeEls = new Map();
    var maxDepth = ego.depth;
    // Draw outer rings first so the centre ends on top.
    for (var i = ego.order.length - 1; i >= 0; i--) {
      var r = ego.order[i], d = ego.depthOf.get(r), p = pos.get(r);
      var g = svgEl('g', { class: 'node' + (d === 0 ? ' centre' : ''),
                           'data-book-index': bookIndex[r], 'data-depth': d,
                           transform: 'translate(' + p.x.toFixed(1) + ',' + p.y.toFixed(1) + ')' });
      g.appendChild(svgEl('circle', { r: nodeRadius(r, d).toFixed(1), fill: colourOf(r) }));
      var label = labelFor(r, d, maxDepth);
      if (label) {
        var right = Math.cos(p.angle) >= 0;
        var t = svgEl('text', d === 0 ? { y: -nodeRadius(r, 0) - 8, 'text-anchor': 'middle' }
          : { x: right ? 11 : -11, dy: '0.35em', 'text-anchor': right ? 'start' : 'end' });
        t.textContent = label;
        g.appendChild(t);
      }
      state.nodeEls.set(r, g);
      nodeLayer.appendChild(g);
    }
  }

  function movePositions(pos) {
    state.nodeEls.forEach(function (g, r) {
      var p = pos.get(r);
      g.setAttribute('transform', 'translate(' + p.x.toFixed(1) + ',' + p.y.toFixed(1) + ')');
    });
    edgePaths.forEach(function (b) { b.el.setAttribute('d', edgePath(state.ego.edges, pos, b.f)); });
  }

  // The drawing size is read once and on resize, never in the middle of a render
  // (reading layout there would force the browser to lay the page out twice).
  var size = { w: svg.clientWidth || 800, h: svg.clientHeight || 600 };

  function applyView() {
    var w = size.w, h = size.h, v = state.view;
    viewport.setAttribute('transform', 'translate(' + (w / 2 + v.x).toFixed(1) + ',' +
      (h / 2 + v.y).toFixed(1) + ') scale(' + v.k.toFixed(3) + ')');
  }

  function drawLegend() {
    var legend = $('legend');
    clear(legend);
    if (!state.ego || colourBy === 'none') return;
    var counts = new Map(), keys = [];
    state.ego.order.forEach(function (r) {
      var cat = category(r), key = cat ? String(cat[0]) : '';
      if (!counts.has(key)) { counts.set(key, { n: 0, label: cat ? cat[1] : 'unknown', r: r }); keys.push(key); }
      counts.get(key).n++;
    });
    keys.sort(function (a, b) { return counts.get(b).n - counts.get(a).n; });
    keys.slice(0, 8).forEach(function (key) {
      var c = counts.get(key), item = el('span', 'item');
      var sw = el('span', 'swatch');
      sw.style.background = colourOf(c.r);
      item.appendChild(sw);
      item.appendChild(document.createTextNode(c.label + ' (' + c.n + ')'));
      legend.appendChild(item);
    });
    if (keys.length > 8) legend.appendChild(el('span', 'item', '+' + (keys.length - 8) + ' more'));
  }

  function drawSide() {
    var c = state.centre;
    $('centre-title').textContent = titleOf(c);
    $('centre-authors').textContent = authorsOf(c);
    var meta = $('centre-meta');
    clear(meta);
    var bits = [];
    if (ratings && ratings[c] != null) bits.push(fmtInt(ratings[c]) + ' ratings');
    if (avgRating && avgRating[c] != null) bits.push('avg ' + avgRating[c].toFixed(2) + ' \u2605');
    if (genres && genres[c] >= 0) bits.push(genreNames[genres[c]]);
    if (communities && communities[c] != null) bits.push('community ' + communities[c]);
    bits.push('book_index ' + bookIndex[c]);
    bits.forEach(function (b) { meta.appendChild(el('span', null, b)); });
    if (bookIds && /^[0-9]+$/.test(bookIds[c] || '')) {
      var a = el('a', null, 'Goodreads \u2197');
      a.href = 'https://www.goodreads.com/book/show/' + bookIds[c];
      a.rel = 'noopener noreferrer';
      a.target = '_blank';
      meta.appendChild(a);
    }
    var list = $('neighbours');
    clear(list);
    var end = Math.min(offsets[c + 1], offsets[c] + LIST_SIZE);
    $('neighbours-label').textContent = (end - offsets[c]) + ' nearest books';
    for (var e = offsets[c]; e < end; e++) {
      var v = targets[e], li = el('li');
      li.setAttribute('data-book-index', bookIndex[v]);
      li.setAttribute('data-rank', e - offsets[c] + 1);
      li.appendChild(el('span', 'n-rank', String(e - offsets[c] + 1)));
      var t = el('span', 'n-title');
      var dot = el('span', 'dot');
      dot.style.background = colourOf(v);
      t.appendChild(dot);
      t.appendChild(el('span', 'n-text', titleOf(v)));
      li.appendChild(t);
      li.appendChild(el('span', 'n-cos', cosines[e].toFixed(3)));
      if (authorsOf(v)) li.appendChild(el('span', 'n-authors', authorsOf(v)));
      list.appendChild(li);
    }
    if (end === offsets[c]) list.appendChild(el('li', 'n-empty', 'No neighbours in this graph.'));
  }

  function drawCut() {           // the page holds only the most-read books: say so
    if (!(data.total_books > N)) return;
    $('cut').textContent = 'This page holds the ' + fmtInt(N) + ' most-read of ' +
      fmtInt(data.total_books) + ' books (explorer --max_nodes ' + N + '); ' +
      fmtInt(data.dropped_edges) + ' links to the other books are left out.';
    $('cut').hidden = false;
  }

  function drawStatus() {
    var ego = state.ego;
    var text = 'Showing ' + fmtInt(ego.order.length) + ' of ' + fmtInt(N) + ' books \u00b7 ' +
      fmtInt(ego.edges.length) + ' links \u00b7 depth ' + ego.depth;
    if (ego.truncated) text += ' (closest ' + fmtInt(ego.order.length) + ' only)';
    $('status').textContent = text;
  }

  function render(animate) {
    var t0 = performance.now();
    var w = size.w, h = size.h;
    var oldPos = state.pos;
    state.anim++;  // stops any running transition
    document.body.setAttribute('data-animating', '0');
    state.ego = egoGraph(state.centre, state.depth);
    var t1 = performance.now();
    assignSlots(state.ego.order);
    var pos = layout(state.ego, w, h);
    state.pos = pos;
    var t2 = performance.now();
    drawEdges(pos);
    var t3 = performance.now();
    drawNodes(pos);
    var t4 = performance.now();
    drawLegend();
    drawSide();
    drawStatus();
    stats.lastSteps = { ego: t1 - t0, layout: t2 - t1, edges: t3 - t2, nodes: t4 - t3,
                        side: performance.now() - t4 };
    applyView();
    hideTooltip();
    state.hover = -1;
    hiPath.setAttribute('d', '');
    document.body.setAttribute('data-centre', bookIndex[state.centre]);
    document.body.setAttribute('data-depth', state.depth);
    document.body.setAttribute('data-shown', state.ego.order.length);
    var dt = performance.now() - t0;
    stats.renders++;
    stats.lastRenderMs = dt;
    stats.maxRenderMs = Math.max(stats.maxRenderMs, dt);
    if (animate && oldPos) tween(oldPos, pos);
  }

  // Books already on screen glide to their new place; new ones grow out of the
  // old position of their parent (or of the new centre).
  function tween(oldPos, newPos) {
    var from = new Map(), origin = oldPos.get(state.centre) || { x: 0, y: 0 };
    newPos.forEach(function (p, r) {
      var o = oldPos.get(r);
      if (!o) { var par = state.ego.parent.get(r); o = (par != null && oldPos.get(par)) || origin; }
      from.set(r, o);
    });
    var start = performance.now(), id = ++state.anim, cur = new Map(), last = start;
    function frame(now) {
      if (id !== state.anim) return;
      var t = Math.min(1, (now - start) / 380);
      if (now - last > 70) t = 1;   // a slow machine: skip to the end rather than stutter
      last = now;
      var s = t < 0.5 ? 2 * t * t : 1 - Math.pow(-2 * t + 2, 2) / 2;
      newPos.forEach(function (p, r) {
        var o = from.get(r);
        cur.set(r, { x: o.x + (p.x - o.x) * s, y: o.y + (p.y - o.y) * s, angle: p.angle });
      });
      movePositions(cur);
      if (t < 1) requestAnimationFrame(frame);
      else { movePositions(newPos); document.body.setAttribute('data-animating', '0'); }
    }
    document.body.setAttribute('data-animating', '1');
    movePositions(from);
    requestAnimationFrame(frame);
  }

  function setCentre(row, opts) {
    if (row < 0 || row >= N) return;
    opts = opts || {};
    var changed = row !== state.centre;
    state.centre = row;
    if (changed && !opts.keepView) state.view = { x: 0, y: 0, k: 1 };
    render(changed && opts.animate !== false);
    if (changed && !opts.noHistory) {
      try { history.replaceState(null, '', '#book=' + bookIndex[row]); } catch (err) { /* file:// quirks */ }
    }
  }

  // ---- tooltip & hover ------------------------------------------------------
  function showTooltip(r, clientX, clientY) {
    $('tooltip-title').textContent = titleOf(r);
    $('tooltip-authors').textContent = authorsOf(r);
    var rc = ratings && ratings[r] != null ? fmtInt(ratings[r]) + ' ratings' : 'ratings: n/a';
    if (avgRating && avgRating[r] != null) rc += ' \u00b7 avg ' + avgRating[r].toFixed(2);
    $('tooltip-ratings').textContent = rc;
    $('tooltip-cosine').textContent = cosineText(r, state.centre);
    tooltip.hidden = false;
    tooltip.setAttribute('data-book-index', bookIndex[r]);
    var box = pane.getBoundingClientRect(), tw = tooltip.offsetWidth, th = tooltip.offsetHeight;
    var x = clientX - box.left + 14, y = clientY - box.top + 14;
    if (x + tw > box.width - 4) x = clientX - box.left - tw - 14;
    if (y + th > box.height - 4) y = clientY - box.top - th - 14;
    tooltip.style.transform = 'translate(' + Math.max(4, x) + 'px,' + Math.max(4, y) + 'px)';
  }
  function hideTooltip() { tooltip.hidden = true; tooltip.removeAttribute('data-book-index'); }

  function highlight(r) {
    if (state.hover === r) return;
    state.hover = r;
    state.nodeEls.forEach(function (g) { g.classList.remove('hover', 'linked'); });
    if (r < 0 || !state.nodeEls.has(r)) { hiPath.setAttribute('d', ''); return; }
    state.nodeEls.get(r).classList.add('hover');
    var mine = state.ego.edges.filter(function (e) { return e.a === r || e.b === r; });
    mine.forEach(function (e) {
      var other = e.a === r ? e.b : e.a;
      if (state.nodeEls.has(other)) state.nodeEls.get(other).classList.add('linked');
    });
    hiPath.setAttribute('d', edgePath(mine, state.pos));
  }

  function nodeRowFromEvent(ev) {
    var g = ev.target.closest ? ev.target.closest('.node') : null;
    if (!g) return -1;
    return rowOf(Number(g.getAttribute('data-book-index')));
  }

  // ---- pan & zoom -----------------------------------------------------------
  var drag = null;
  svg.addEventListener('pointerdown', function (ev) {
    if (nodeRowFromEvent(ev) >= 0 || ev.button !== 0) return;
    drag = { x: ev.clientX, y: ev.clientY, vx: state.view.x, vy: state.view.y, moved: false };
    svg.setPointerCapture(ev.pointerId);
    svg.classList.add('panning');
  });
  svg.addEventListener('pointermove', function (ev) {
    if (drag) {
      state.view.x = drag.vx + ev.clientX - drag.x;
      state.view.y = drag.vy + ev.clientY - drag.y;
      applyView();
      return;
    }
    var r = nodeRowFromEvent(ev);
    if (r >= 0) { highlight(r); showTooltip(r, ev.clientX, ev.clientY); } else { highlight(-1); hideTooltip(); }
  });
  svg.addEventListener('pointerup', function () { drag = null; svg.classList.remove('panning'); });
  svg.addEventListener('pointerleave', function () { if (!drag) { highlight(-1); hideTooltip(); } });
  svg.addEventListener('wheel', function (ev) {
    ev.preventDefault();
    var box = svg.getBoundingClientRect(), v = state.view;
    var k = Math.max(0.3, Math.min(6, v.k * Math.exp(-ev.deltaY * 0.0015)));
    var mx = ev.clientX - box.left - box.width / 2, my = ev.clientY - box.top - box.height / 2;
    v.x = mx - (mx - v.x) * k / v.k;
    v.y = my - (my - v.y) * k / v.k;
    v.k = k;
    applyView();
  }, { passive: false });
  svg.addEventListener('dblclick', function () { state.view = { x: 0, y: 0, k: 1 }; applyView(); });
  svg.addEventListener('click', function (ev) {
    var r = nodeRowFromEvent(ev);
    if (r >= 0 && r !== state.centre) setCentre(r);
  });
  window.addEventListener('resize', function () {
    size = { w: svg.clientWidth || 800, h: svg.clientHeight || 600 };
    if (state.centre >= 0) render(false);
  });

  // ---- neighbour list -------------------------------------------------------
  var neighbourList = $('neighbours');
  neighbourList.addEventListener('click', function (ev) {
    var li = ev.target.closest('li[data-book-index]');
    if (li) setCentre(rowOf(Number(li.getAttribute('data-book-index'))));
  });
  neighbourList.addEventListener('mouseover', function (ev) {
    var li = ev.target.closest('li[data-book-index]');
    highlight(li ? rowOf(Number(li.getAttribute('data-book-index'))) : -1);
  });
  neighbourList.addEventListener('mouseleave', function () { highlight(-1); });

  // ---- search box -----------------------------------------------------------
  var results = [], active = -1, searchTimer = 0;

  function showResults() {
    var t0 = performance.now();
    results = search(searchInput.value);
    var dt = performance.now() - t0;
    stats.lastSearchMs = dt;
    stats.maxSearchMs = Math.max(stats.maxSearchMs, dt);
    active = results.length ? 0 : -1;
    clear(resultsList);
    if (!searchInput.value.trim()) { resultsList.hidden = true; return; }
    if (!results.length) {
      resultsList.appendChild(el('li', 'r-empty', 'No title matches.'));
    }
    results.forEach(function (r, i) {
      var li = el('li', i === active ? 'active' : '');
      li.setAttribute('role', 'option');
      li.setAttribute('data-book-index', bookIndex[r]);
      li.appendChild(el('div', 'r-title', titleOf(r)));
      var sub = authorsOf(r);
      if (ratings && ratings[r] != null) sub += (sub ? ' \u00b7 ' : '') + fmtInt(ratings[r]) + ' ratings';
      if (sub) li.appendChild(el('div', 'r-authors', sub));
      resultsList.appendChild(li);
    });
    resultsList.hidden = false;
  }

  function setActive(i) {
    var items = resultsList.querySelectorAll('li[data-book-index]');
    if (!items.length) return;
    active = (i + items.length) % items.length;
    items.forEach(function (li, j) { li.classList.toggle('active', j === active); });
    items[active].scrollIntoView({ block: 'nearest' });
  }

  function choose(r) {
    resultsList.hidden = true;
    searchInput.value = titleOf(r);
    searchInput.blur();
    setCentre(r);
  }

  searchInput.addEventListener('input', function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(showResults, 40);
  });
  searchInput.addEventListener('focus', function () {
    if (searchInput.value.trim()) showResults();
  });
  searchInput.addEventListener('keydown', function (ev) {
    if (ev.key === 'ArrowDown') { ev.preventDefault(); setActive(active + 1); }
    else if (ev.key === 'ArrowUp') { ev.preventDefault(); setActive(active - 1); }
    else if (ev.key === 'Enter') {
      clearTimeout(searchTimer);
      if (!results.length || resultsList.hidden) showResults();
      if (results.length) choose(results[Math.max(0, active)]);
    } else if (ev.key === 'Escape') { resultsList.hidden = true; }
  });
  resultsList.addEventListener('mousedown', function (ev) {
    var li = ev.target.closest('li[data-book-index]');
    if (!li) return;
    ev.preventDefault();
    choose(rowOf(Number(li.getAttribute('data-book-index'))));
  });
  document.addEventListener('pointerdown', function (ev) {
    if (!ev.target.closest('#search-box')) resultsList.hidden = true;
  });

  // ---- controls ---------------------------------------------------------------
  depthInput.addEventListener('input', function () {
    state.depth = Number(depthInput.value);
    depthValue.textContent = String(state.depth);
    if (state.centre >= 0) render(false);
  });
  colourModes.forEach(function (mode) {
    var opt = el('option', null, mode);
    opt.value = mode;
    colourSelect.appendChild(opt);
  });
  if (!colourModes.length) colourSelect.appendChild(el('option', null, 'none'));
  colourSelect.addEventListener('change', function () {
    colourBy = colourSelect.value;
    if (state.centre >= 0) render(false);
  });

  // ---- start ------------------------------------------------------------------
  window.bookExplorer = {
    search: function (q, cap) { return search(q, cap).map(function (r) { return bookIndex[r]; }); },
    centre: function () { return state.centre >= 0 ? bookIndex[state.centre] : -1; },
    setCentre: function (index) { setCentre(rowOf(index), { animate: false }); },
    shown: function () { return state.ego ? state.ego.order.map(function (r) { return bookIndex[r]; }) : []; },
    stats: stats,
    n: N
  };

  var t0 = performance.now();
  var start = 0;
  var m = /#book=(-?\d+)/.exec(location.hash);
  if (m && rowOf(Number(m[1])) >= 0) start = rowOf(Number(m[1]));
  state.depth = Number(depthInput.value) || 2;
  if (N > 0) setCentre(start, { animate: false, noHistory: true });
  drawCut();
  stats.loadMs = performance.now() - t0;
  // Build the title index while idle, so the first keystroke is already fast.
  setTimeout(buildSearchIndex, 0);
  document.body.setAttribute('data-ready', '1');
})();
