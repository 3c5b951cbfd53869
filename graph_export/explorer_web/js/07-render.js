  // render.js: State and rendering: nodes, edges, side panel, legend, transitions.
  // ---- state & rendering ----------------------------------------------------
  var state = { centre: -1, depth: 2, ego: null, pos: null, nodeEls: new Map(),
                view: { x: 0, y: 0, k: 1 }, anim: 0, hover: -1 };
  var stats = { renders: 0, lastRenderMs: 0, maxRenderMs: 0, lastSearchMs: 0, maxSearchMs: 0,
                loadMs: 0 };

  function nodeRadius(r, d) {
    var base = BASE_RADIUS[Math.min(d, 3)];
    if (ratingsOf(r) != null) base += Math.min(4, Math.log10(1 + ratingsOf(r)) * 0.6);
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
    if (view === 'map') { drawMapLegend(); return; }
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

  // The side panel: one book (the ego centre or the book chosen on the map), its
  // nearest books with the reasons they are neighbours.
  function drawSide(c) {
    if (c == null) c = state.centre;
    $('book-panel').hidden = c < 0;
    if (c < 0) return;
    $('centre-label').textContent = view === 'map' ? 'Chosen book' : 'Centre';
    $('centre-title').textContent = titleOf(c);
    $('centre-authors').textContent = authorsOf(c);
    var meta = $('centre-meta');
    clear(meta);
    var bits = [];
    if (ratingsOf(c) != null) bits.push(fmtInt(ratingsOf(c)) + ' ratings');
    if (avgRatingOf(c) != null) bits.push('avg ' + avgRatingOf(c).toFixed(2) + ' \u2605');
    if (genres && genres[c] >= 0) bits.push(genreNames[genres[c]]);
    if (communities && communities[c] >= 0) bits.push(groupName('community', communities[c]));
    if (regions && regions[c] >= 0) bits.push('region: ' + groupName('region', regions[c]));
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
      var why = reasonText(e);
      if (why) li.appendChild(el('span', 'n-why', why));
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
    var pos = layout(state.ego, w, h);
    state.pos = pos;
    var t2 = performance.now();
    drawEdges(pos);
    var t3 = performance.now();
    drawNodes(pos);
    var t4 = performance.now();
    drawLegend();
    drawSide(state.centre);
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
    if (changed && !opts.noHistory) writeFragment(false);
  }
