  // map.js: The whole map: camera, spatial index, picking, labels on a screen-space grid,
  // the chosen book with its nearest books, fly-to.
  // ---- map state ----------------------------------------------------------------
  var Q = 65535;                   // positions are 16-bit: map units = q / Q
  var extent = data.extent || [1, 1];
  var mapState = { cx: 0.5, cy: 0.5, z: 0, sel: -1, hl: [], hover: -1, w: 800, h: 600,
                   frames: 0, drawMs: [], lastLabels: [], stale: true, lastFull: 0, fullMs: 0,
                   fullDraws: 0 };
  var renderer = null, frameQueued = false;
  var topLevel = null;             // 'region' when the map has regions, else 'community'

  function home() { return { cx: extent[0] / 2, cy: extent[1] / 2, z: 0 }; }
  function fitScale() {           // CSS px per map unit at zoom 0: the whole map fits
    return 0.92 * Math.min(mapState.w / Math.max(extent[0], 1e-3), mapState.h / Math.max(extent[1], 1e-3));
  }
  function scaleAt(z) { return fitScale() * Math.pow(2, z); }
  function maxZoom() { return Math.max(6, 0.5 * Math.log2(Math.max(N, 1)) + 4); }
  // Zoom from which titles are labelled: about 1,500 books left on screen.
  function titleZoom() { return Math.max(1.2, 0.5 * Math.log2(Math.max(N, 1) / 1500)); }
  function communityZoom() { return topLevel === 'community' ? -99 : Math.min(1, titleZoom() - 0.5); }
  function screenX(r) { return mapState.w / 2 + (posX[r] / Q - mapState.cx) * scaleAt(mapState.z); }
  function screenY(r) { return mapState.h / 2 - (posY[r] / Q - mapState.cy) * scaleAt(mapState.z); }

  // Point diameters (CSS px): a little larger when the map is sparse, growing as you zoom.
  function pointSizes() {
    var spacing = Math.sqrt(mapState.w * mapState.h / Math.max(N, 1));
    var base = Math.max(1.5, Math.min(3.5, 0.4 * spacing));
    var zoom = Math.min(3.5, Math.pow(2, 0.45 * Math.max(0, mapState.z)));
    return { base: base * zoom, grow: 1.6 * base * zoom };
  }
  function pointRadius(r) {
    var p = pointSizes();
    return (p.base + (sizes ? sizes[r] / 255 : 0.5) * p.grow) / 2;
  }

  // ---- spatial index: a uniform grid, rows of each cell in row (most-read) order ----
  var G = 1, cellStart = null, cellRows = null;
  function buildSpatialIndex() {
    G = Math.max(1, Math.min(1024, Math.ceil(Math.sqrt(N / 6))));
    var cells = new Int32Array(N), counts = new Int32Array(G * G + 1);
    for (var r = 0; r < N; r++) {
      var c = Math.min(G - 1, (posX[r] * G / (Q + 1)) | 0) * G + Math.min(G - 1, (posY[r] * G / (Q + 1)) | 0);
      cells[r] = c;
      counts[c + 1]++;
    }
    for (var i = 0; i < G * G; i++) counts[i + 1] += counts[i];
    cellStart = counts;
    cellRows = new Int32Array(N);
    var fill = counts.slice(0, G * G);
    for (var q = 0; q < N; q++) cellRows[fill[cells[q]]++] = q;
  }
  // The drawing order: cell after cell, in each the most-read last (drawn on top).
  function drawOrder() {
    var out = new Int32Array(N);
    for (var c = 0; c < G * G; c++) {
      for (var i = cellStart[c], j = cellStart[c + 1] - 1; j >= cellStart[c]; i++, j--) out[i] = cellRows[j];
    }
    return out;
  }
  // Ranges of the drawing order that can show on the texture (the screen times the
  // renderer's margin, plus a cell); null when that is the whole map.
  function drawRanges() {
    var s = scaleAt(mapState.z), m = renderer.margin / 2 + 0.02;
    var hw = mapState.w * m / s + 1 / G, hh = mapState.h * m / s + 1 / G;
    var c = cellRange(mapState.cx - hw, mapState.cy - hh, mapState.cx + hw, mapState.cy + hh);
    if (c[0] === 0 && c[1] === 0 && c[2] === G - 1 && c[3] === G - 1) return null;
    var ranges = [];
    for (var gx = c[0]; gx <= c[2]; gx++) ranges.push(cellStart[gx * G + c[1]], cellStart[gx * G + c[3] + 1]);
    return ranges;
  }
  function cellRange(x0, y0, x1, y1) {      // map units -> inclusive cell index bounds
    var k = G / (Q + 1) * Q;
    function clamp(v) { return Math.max(0, Math.min(G - 1, Math.floor(v * k))); }
    return [clamp(x0), clamp(y0), clamp(x1), clamp(y1)];
  }
  function visibleBox() {
    var s = scaleAt(mapState.z), hw = mapState.w / 2 / s, hh = mapState.h / 2 / s;
    return [mapState.cx - hw, mapState.cy - hh, mapState.cx + hw, mapState.cy + hh];
  }

  // The book under a screen point (CSS px in the pane), or -1: the nearest within its
  // radius (+3 px), highlighted books first.
  function pick(px, py) {
    var best = -1, bestD = Infinity;
    function consider(r) {
      var dx = screenX(r) - px, dy = screenY(r) - py, d = dx * dx + dy * dy;
      var rad = (mapState.hl.indexOf(r) >= 0 ? 8 : pointRadius(r)) + 3;
      if (d <= rad * rad && d < bestD) { bestD = d; best = r; }
    }
    mapState.hl.forEach(consider);
    if (best >= 0) return best;
    var s = scaleAt(mapState.z), reach = 14 / s;
    var ux = mapState.cx + (px - mapState.w / 2) / s, uy = mapState.cy - (py - mapState.h / 2) / s;
    var c = cellRange(ux - reach, uy - reach, ux + reach, uy + reach);
    for (var gx = c[0]; gx <= c[2]; gx++) {
      for (var gy = c[1]; gy <= c[3]; gy++) {
        var cell = gx * G + gy;
        for (var i = cellStart[cell]; i < cellStart[cell + 1]; i++) consider(cellRows[i]);
      }
    }
    return best;
  }

  // ---- labels: placed in priority order on a grid of LABEL_CELL px, never overlapping ----
  var labelPool = [];
  function placeLabels() {
    var w = mapState.w, h = mapState.h, cols = Math.ceil(w / LABEL_CELL), rows = Math.ceil(h / LABEL_CELL);
    var taken = new Uint8Array(cols * rows), placed = [];
    // The legend, the zoom buttons and the status line sit over the map: no label there.
    var pane = mapCanvas.getBoundingClientRect();
    ['legend', 'map-controls', 'status'].forEach(function (id) {
      var node = $(id);
      if (!node || node.hidden || !node.firstChild) return;
      var r = node.getBoundingClientRect();
      if (!r.width) return;
      var ca = Math.max(0, Math.floor((r.left - pane.left) / LABEL_CELL));
      var cb = Math.min(cols - 1, Math.floor((r.right - pane.left) / LABEL_CELL));
      var ra = Math.max(0, Math.floor((r.top - pane.top) / LABEL_CELL));
      var rb = Math.min(rows - 1, Math.floor((r.bottom - pane.top) / LABEL_CELL));
      for (var y = ra; y <= rb; y++) for (var x = ca; x <= cb; x++) taken[y * cols + x] = 1;
    });
    function tryPlace(kind, text, x, y, centred, book) {
      var tw = text.length * CHAR_W[kind] + 6, th = LINE_H[kind];
      var left = centred ? Math.max(0, Math.min(w - tw, x - tw / 2)) : x + 5, top = y - th / 2;
      if (left < 0 || top < 0 || left + tw > w || top + th > h) return false;
      var c0 = Math.floor(left / LABEL_CELL), c1 = Math.floor((left + tw) / LABEL_CELL);
      var r0 = Math.floor(top / LABEL_CELL), r1 = Math.floor((top + th) / LABEL_CELL);
      for (var r = r0; r <= r1; r++) for (var c = c0; c <= c1; c++) if (taken[r * cols + c]) return false;
      for (var r2 = r0; r2 <= r1; r2++) for (var c2 = c0; c2 <= c1; c2++) taken[r2 * cols + c2] = 1;
      placed.push({ kind: kind, text: text, x: left, y: top, book: book });
      return true;
    }
    function groupLabels(level, minSize) {
      var t = groupTables[level];
      if (!t) return;
      var order = t.bySize || (t.bySize = t.size.map(function (s, i) { return i; })
        .sort(function (a, b) { return t.size[b] - t.size[a] || a - b; }));
      var s = scaleAt(mapState.z);
      var kind = level === 'region' ? 'region' : 'community', lh = LINE_H[kind];
      order.forEach(function (g) {
        if (t.size[g] < minSize) return;
        // The best place, a line above or below it, then the group's other patches.
        var spots = [t.x[g], t.y[g]].concat(t.alt ? t.alt[g] : []), text = short(t.name[g], 46);
        for (var i = 0; i < spots.length; i += 2) {
          var x = w / 2 + (spots[i] / Q - mapState.cx) * s, y = h / 2 - (spots[i + 1] / Q - mapState.cy) * s;
          if (x < -200 || x > w + 200 || y < 0 || y > h) continue;
          if (tryPlace(kind, text, x, y, true, -1) || tryPlace(kind, text, x, y - lh, true, -1) ||
              tryPlace(kind, text, x, y + lh, true, -1)) return;
        }
      });
    }
    // 1. the chosen book and its neighbours, 2. regions or communities, 3. titles.
    mapState.hl.forEach(function (r) {
      tryPlace('title', short(titleOf(r), 34), screenX(r) + 5, screenY(r), false, r);
    });
    var z = mapState.z, tz = titleZoom();
    if (topLevel === 'region' && z < tz) groupLabels('region', 1);
    if (z >= communityZoom()) {
      var total = N, shown = total / Math.pow(4, Math.max(0, z));
      groupLabels('community', Math.max(2, Math.min(50, shown / 400)));
    }
    if (z >= tz) titleLabels(tryPlace);
    drawLabels(placed);
    mapState.lastLabels = placed;
  }

  function titleLabels(tryPlace) {
    var box = visibleBox(), c = cellRange(box[0], box[1], box[2], box[3]), cand = [];
    var perCell = Math.max(2, Math.ceil(600 / Math.max(1, (c[2] - c[0] + 1) * (c[3] - c[1] + 1))));
    for (var gx = c[0]; gx <= c[2]; gx++) {
      for (var gy = c[1]; gy <= c[3]; gy++) {
        var cell = gx * G + gy, end = Math.min(cellStart[cell + 1], cellStart[cell] + perCell);
        for (var i = cellStart[cell]; i < end; i++) cand.push(cellRows[i]);
      }
    }
    cand.sort(function (a, b) { return a - b; });
    var count = 0;
    for (var j = 0; j < cand.length && count < MAX_TITLE_LABELS; j++) {
      var r = cand[j];
      if (mapState.hl.indexOf(r) >= 0) continue;
      if (tryPlace('title', short(titleOf(r), 30), screenX(r) + pointRadius(r), screenY(r), false, r)) count++;
    }
  }

  function drawLabels(placed) {
    while (labelPool.length < placed.length) {
      var span = el('span', 'lbl');
      labelLayer.appendChild(span);
      labelPool.push({ el: span, text: null, kind: null, book: -2 });
    }
    for (var i = 0; i < labelPool.length; i++) {
      var slot = labelPool[i], p = placed[i];
      if (!p) { if (slot.text !== null) { slot.el.hidden = true; slot.text = null; } continue; }
      if (slot.text !== p.text) { slot.el.textContent = p.text; slot.text = p.text; }
      if (slot.kind !== p.kind || slot.book !== p.book) {
        var hl = p.book >= 0 && mapState.hl.indexOf(p.book) >= 0;
        slot.el.className = 'lbl ' + p.kind + (hl ? ' hl' : '');
        if (p.book >= 0) slot.el.setAttribute('data-book-index', bookIndex[p.book]);
        else slot.el.removeAttribute('data-book-index');
        slot.kind = p.kind; slot.book = p.book;
      }
      slot.el.hidden = false;
      slot.el.style.transform = 'translate(' + p.x.toFixed(1) + 'px,' + p.y.toFixed(1) + 'px)';
    }
  }

  // ---- drawing -------------------------------------------------------------------
  function resizeMap() {
    var dpr = window.devicePixelRatio || 1;
    mapState.w = mapCanvas.clientWidth || 800;
    mapState.h = mapCanvas.clientHeight || 600;
    mapCanvas.width = Math.round(mapState.w * dpr);
    mapCanvas.height = Math.round(mapState.h * dpr);
    mapState.stale = true;
  }

  // A full drawing of every book when the picture is stale (new colours, a new choice,
  // the camera at rest) or has not been redrawn for a while during a long move; otherwise
  // the last picture moved (see gl.js). opts.full forces a full drawing.
  var restTimer = 0;
  function drawMap(opts) {
    frameQueued = false;
    if (view !== 'map' || !renderer) return;
    var t0 = performance.now(), dpr = window.devicePixelRatio || 1, p = pointSizes();
    var cam = { cx: mapState.cx, cy: mapState.cy, s: scaleAt(mapState.z) * dpr,
                base: p.base * dpr, grow: p.grow * dpr };
    var full = (opts && opts.full) || mapState.stale || !renderer.hasPicture() ||
      t0 - mapState.lastFull > Math.max(600, 8 * mapState.fullMs);
    if (full) {
      mapState.drawn = renderer.drawFull(cam, drawRanges());
      renderer.finish();       // its real cost (the GPU's, not the command queue's) sets
      mapState.stale = false;  // how often a long move may redraw everything
      mapState.lastFull = performance.now();
      mapState.fullMs = mapState.lastFull - t0;
      mapState.fullDraws++;
      mapState.fullCam = [mapState.cx, mapState.cy, mapState.z];
    } else {
      renderer.present(cam);
    }
    var fc = mapState.fullCam;
    var moved = !fc || fc[0] !== mapState.cx || fc[1] !== mapState.cy || fc[2] !== mapState.z;
    if (moved && (!full || (opts && opts.moving))) {   // redraw everything once the camera rests
      clearTimeout(restTimer);
      restTimer = setTimeout(function () { mapState.stale = true; requestDraw(); }, 160);
    }
    placeLabels();
    mapState.frames++;
    mapState.drawMs.push(performance.now() - t0);
    if (mapState.drawMs.length > 200) mapState.drawMs.shift();
    document.body.setAttribute('data-frames', mapState.frames);
    drawMapStatus();
  }
  function requestDraw() {
    if (frameQueued) return;
    frameQueued = true;
    requestAnimationFrame(drawMap);
  }

  function recolour() {
    if (!renderer) return;
    mapState.stale = true;
    renderer.setColours(rgbOf, function (r) { return sizes ? sizes[r] : 128; });
    setHighlightRows(mapState.hl);
    drawLegend();
    requestDraw();
  }

  function drawMapStatus() {
    var text = fmtInt(N) + ' books';
    if (mapState.z > 0.5) text += ' \u00b7 zoom ' + Math.pow(2, mapState.z).toFixed(1) + '\u00d7';
    $('status').textContent = text;
  }

  function drawMapLegend() {
    var legend = $('legend');
    clear(legend);
    if (colourBy === 'none') return;
    var names, sizesOfGroups;
    if (colourBy === 'genre') {
      var counts = genreNames.map(function () { return 0; });
      for (var r = 0; r < N; r++) if (genres[r] >= 0) counts[genres[r]]++;
      names = genreNames; sizesOfGroups = counts;
    } else {
      names = groupTables[colourBy].name; sizesOfGroups = groupTables[colourBy].size;
    }
    var order = sizesOfGroups.map(function (s, i) { return i; })
      .sort(function (a, b) { return sizesOfGroups[b] - sizesOfGroups[a] || a - b; });
    order.slice(0, 10).forEach(function (code) {
      var item = el('span', 'item'), sw = el('span', 'swatch');
      sw.style.background = rgbHex(groupColours[colourBy][code]);
      item.appendChild(sw);
      item.appendChild(document.createTextNode(short(names[code], 40) + ' (' + fmtInt(sizesOfGroups[code]) + ')'));
      legend.appendChild(item);
    });
    if (order.length > 10) legend.appendChild(el('span', 'item', '+' + (order.length - 10) + ' more'));
  }

  // ---- the chosen book -----------------------------------------------------------
  function neighbourRows(r) {
    var out = [];
    for (var e = offsets[r]; e < Math.min(offsets[r + 1], offsets[r] + LIST_SIZE); e++) out.push(targets[e]);
    return out;
  }
  function setHighlightRows(rows) {
    mapState.hl = rows;
    if (!renderer) return;
    var inSet = new Set(rows), pairs = [];
    rows.forEach(function (a) {
      for (var e = offsets[a]; e < offsets[a + 1]; e++) {
        var b = targets[e];
        if (inSet.has(b) && (a < b || edgeBetween(b, a) < 0)) pairs.push(a, b);
      }
    });
    mapState.pairs = pairs.length / 2;
    renderer.setHighlight(rows, pairs, posX, posY, rgbOf);
    mapState.stale = true;             // the other books are dimmed while one is chosen
  }

  // Chooses a book on the map (or none: -1); opts.fly moves the camera to it and its
  // neighbours (true, false or 'auto'); opts.history: 'push' (default), 'replace' or 'none'.
  function selectBook(r, opts) {
    opts = opts || {};
    mapState.sel = r;
    setHighlightRows(r >= 0 ? [r].concat(neighbourRows(r)) : []);
    drawSide(r);
    document.body.setAttribute('data-selected', r >= 0 ? bookIndex[r] : '');
    // 'auto' (a click): fly only when some of the neighbours are off screen.
    var fly = opts.fly === 'auto' ? !mapState.hl.every(onScreen) : opts.fly;
    if (r >= 0 && fly) flyTo(frameRows(mapState.hl));
    else requestDraw();
    if (opts.history !== 'none') writeFragment(opts.history !== 'replace');
  }

  function onScreen(r) {
    var x = screenX(r), y = screenY(r);
    return x >= 20 && y >= 20 && x <= mapState.w - 20 && y <= mapState.h - 20;
  }

  // A camera centred on the first row that shows all the given rows with a margin.
  function frameRows(rows) {
    var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    rows.forEach(function (r) {
      x0 = Math.min(x0, posX[r] / Q); x1 = Math.max(x1, posX[r] / Q);
      y0 = Math.min(y0, posY[r] / Q); y1 = Math.max(y1, posY[r] / Q);
    });
    var first = rows[0], cx = posX[first] / Q, cy = posY[first] / Q;
    var span = Math.max(2 * Math.max(cx - x0, x1 - cx), 2 * Math.max(cy - y0, y1 - cy) * mapState.w / mapState.h, 1e-6);
    var z = Math.log2(0.8 * mapState.w / span / fitScale());
    z = Math.max(-1, Math.min(z, maxZoom() - 1));
    return { cx: cx, cy: cy, z: z };
  }

  var flight = 0;
  function flyTo(to, ms) {
    var from = { cx: mapState.cx, cy: mapState.cy, z: mapState.z }, id = ++flight;
    var start = performance.now(), dur = ms == null ? FLY_MS : ms;
    document.body.setAttribute('data-animating', '1');
    function step(now) {
      if (id !== flight) return;
      var t = dur > 0 ? Math.min(1, (now - start) / dur) : 1;
      var e = t < 0.5 ? 2 * t * t : 1 - Math.pow(-2 * t + 2, 2) / 2;
      mapState.cx = from.cx + (to.cx - from.cx) * e;
      mapState.cy = from.cy + (to.cy - from.cy) * e;
      mapState.z = from.z + (to.z - from.z) * e;
      drawMap({ moving: true });
      if (t < 1) requestAnimationFrame(step);
      else { document.body.setAttribute('data-animating', '0'); cameraMoved(); }
    }
    requestAnimationFrame(step);
  }
  function stopFlight() { flight++; document.body.setAttribute('data-animating', '0'); }

  function setCamera(cx, cy, z) {
    mapState.z = Math.max(-1, Math.min(maxZoom(), z));
    mapState.cx = Math.max(-0.2, Math.min(extent[0] + 0.2, cx));
    mapState.cy = Math.max(-0.2, Math.min(extent[1] + 0.2, cy));
    requestDraw();
    cameraMoved();
  }
  // Zooms by dz around a screen point (CSS px in the pane), keeping it fixed.
  function zoomAround(dz, px, py) {
    var s0 = scaleAt(mapState.z), z = Math.max(-1, Math.min(maxZoom(), mapState.z + dz)), s1 = scaleAt(z);
    var ux = mapState.cx + (px - mapState.w / 2) / s0, uy = mapState.cy - (py - mapState.h / 2) / s0;
    setCamera(ux - (px - mapState.w / 2) / s1, uy + (py - mapState.h / 2) / s1, z);
  }

  var settleTimer = 0;
  function cameraMoved() {        // keeps the place in the URL once the camera rests
    clearTimeout(settleTimer);
    settleTimer = setTimeout(function () { if (view === 'map') writeFragment(false); }, 250);
  }
