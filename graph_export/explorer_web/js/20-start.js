  // start.js: Start-up: the test hook (window.bookExplorer), the first centre, the idle search index.
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
