  // start.js: Start-up: inflate the data, draw the first frame (the whole map, or the place
  // the URL names), the test hook (window.bookExplorer), the idle search index.
  // ---- start ------------------------------------------------------------------
  function rowsOf(indices) { return indices.map(rowOf).filter(function (r) { return r >= 0; }); }
  window.bookExplorer = {
    search: function (q, cap) { return search(q, cap).map(function (r) { return bookIndex[r]; }); },
    centre: function () { return state.centre >= 0 ? bookIndex[state.centre] : -1; },
    setCentre: function (index) { setCentre(rowOf(index), { animate: false }); },
    shown: function () { return state.ego ? state.ego.order.map(function (r) { return bookIndex[r]; }) : []; },
    view: function () { return view; },
    openEgo: function (index) { openEgo(rowOf(index)); },
    openMap: function () { openMap(null, { fly: false }); },
    select: function (index, fly) { selectBook(rowOf(index), { fly: !!fly }); },
    selected: function () { return mapState.sel >= 0 ? bookIndex[mapState.sel] : -1; },
    highlighted: function () { return mapState.hl.map(function (r) { return bookIndex[r]; }); },
    highlightedEdges: function () { return mapState.pairs || 0; },
    camera: function () { return { cx: mapState.cx, cy: mapState.cy, z: mapState.z, titleZoom: titleZoom() }; },
    setCamera: function (cx, cy, z) { stopFlight(); setCamera(cx, cy, z); },
    home: function () { return home(); },
    // Where a book is drawn, in viewport CSS px (for tests and the benchmark).
    screenOf: function (index) {
      var r = rowOf(index), box = mapCanvas.getBoundingClientRect();
      return r < 0 ? null : [box.left + screenX(r), box.top + screenY(r)];
    },
    labels: function () {
      return mapState.lastLabels.map(function (p) {
        return { kind: p.kind, text: p.text, book: p.book >= 0 ? bookIndex[p.book] : null };
      });
    },
    // Draws one frame now (every book, or with full === false the last picture moved)
    // and waits for the GPU; returns its time in ms.
    drawNow: function (full) {
      var t0 = performance.now();
      if (full === false) { mapState.stale = false; mapState.lastFull = t0; }
      drawMap({ full: full !== false });
      if (renderer) renderer.finish();
      return performance.now() - t0;
    },
    rowsOf: rowsOf,
    stats: stats,
    mapStats: mapState,
    webgl: function () { return !!renderer; },
    n: N
  };

  var t0 = performance.now();
  loadData().then(function () {
    stats.decodeMs = performance.now() - t0;
    initColours();
    initControls();
    topLevel = groupTables.region && regions ? 'region' : 'community';
    buildSpatialIndex();
    try {
      renderer = createRenderer(mapCanvas);
    } catch (err) {
      renderer = null;
      stats.webglError = String(err && err.message || err);
    }
    if (renderer) {
      resizeMap();
      renderer.setPositions(posX, posY, drawOrder());
      renderer.setColours(rgbOf, function (r) { return sizes ? sizes[r] : 128; });
      var c = home();
      mapState.cx = c.cx; mapState.cy = c.cy; mapState.z = 0;
    }
    state.depth = Number(depthInput.value) || 2;
    if (N > 0 && !applyFragment(location.hash)) {
      if (renderer) { showView('map'); selectBook(-1, { history: 'none' }); }
      else openEgo(0, { history: 'none' });
    }
    if (!renderer) $('status').textContent = 'WebGL is not available: showing one book\u2019s neighbourhood.';
    drawCut();
    if (view === 'map') { drawMap({ full: true }); renderer.finish(); }
    stats.loadMs = performance.now() - t0;
    stats.firstFrameMs = performance.now();      // drawn (GPU finished), since navigation start
    requestAnimationFrame(function () { setTimeout(function () { stats.firstPaintMs = performance.now(); }, 0); });
    // Build the title index while idle, so the first keystroke is already fast.
    setTimeout(buildSearchIndex, 0);
    document.body.setAttribute('data-ready', '1');
  }).catch(function (err) {
    $('status').textContent = 'Could not open the embedded map: ' + (err && err.message || err);
    document.body.setAttribute('data-ready', 'error');
    throw err;
  });
