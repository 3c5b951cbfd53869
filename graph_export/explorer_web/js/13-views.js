  // views.js: The two views (whole map, ego graph) and the URL fragment that keeps the place:
  //   #map=CX,CY,Z[&book=B]   the map camera (map units, zoom level) and the chosen book
  //   #ego=B&depth=D          the ego graph of book B
  // Choosing a book or switching views adds a history entry (the back button returns);
  // panning and zooming replace the current one.
  // ---- views & history ------------------------------------------------------------
  function showView(name) {
    view = name;
    document.body.setAttribute('data-view', name);
    $('heading').textContent = name === 'map' ? 'Map of books' : 'Books like this one';
    hideTooltip();
    if (name === 'map') {
      resizeMap();
      drawLegend();
      drawSide(mapState.sel);
      requestDraw();
    } else {
      size = { w: svg.clientWidth || 800, h: svg.clientHeight || 600 };
    }
  }

  function openEgo(row, opts) {
    if (row < 0) return;
    opts = opts || {};
    showView('ego');
    state.centre = -1;   // forces a full render at the new centre
    setCentre(row, { animate: false, noHistory: true });
    if (opts.history !== 'none') writeFragment(opts.history !== 'replace');
  }

  function openMap(row, opts) {
    opts = opts || {};
    showView('map');
    if (row != null && row >= 0) {
      selectBook(row, { fly: opts.fly !== false, history: 'none' });
    }
    if (opts.history !== 'none') writeFragment(opts.history !== 'replace');
  }

  function fragment() {
    if (view === 'ego') return '#ego=' + bookIndex[state.centre] + '&depth=' + state.depth;
    var text = '#map=' + mapState.cx.toFixed(5) + ',' + mapState.cy.toFixed(5) + ',' + mapState.z.toFixed(2);
    if (mapState.sel >= 0) text += '&book=' + bookIndex[mapState.sel];
    return text;
  }
  function writeFragment(push) {
    var text = fragment();
    if (location.hash === text) return;
    try {
      if (push) history.pushState(null, '', text); else history.replaceState(null, '', text);
    } catch (err) { /* some browsers refuse history on file:// pages: the view still works */ }
  }

  // Applies a fragment; returns false when it names no place (then the caller picks one).
  function applyFragment(hash) {
    var params = {};
    hash.replace(/^#/, '').split('&').forEach(function (part) {
      var i = part.indexOf('=');
      if (i > 0) params[part.slice(0, i)] = decodeURIComponent(part.slice(i + 1));
    });
    var bookRow = function (key) {
      return /^-?\d+$/.test(params[key] || '') ? rowOf(Number(params[key])) : -1;
    };
    if (params.ego != null && bookRow('ego') >= 0) {
      var d = Number(params.depth);
      if (d >= 1 && d <= 4) { depthInput.value = d; depthValue.textContent = String(d); state.depth = d; }
      openEgo(bookRow('ego'), { history: 'none' });
      return true;
    }
    if (!renderer) {                 // no WebGL: the ego graph of the named or first book
      openEgo(Math.max(0, bookRow('book')), { history: 'none' });
      return params.book != null;
    }
    var cam = (params.map || '').split(',').map(Number);
    var hasCam = cam.length === 3 && cam.every(isFinite);
    if (view !== 'map') showView('map');
    stopFlight();
    if (hasCam) setCamera(cam[0], cam[1], cam[2]);
    var row = bookRow('book');
    selectBook(row, { fly: !hasCam && row >= 0, history: 'none' });
    return hasCam || row >= 0;
  }
  window.addEventListener('popstate', function () {
    applyFragment(location.hash) || (renderer && (showView('map'), setCamera(home().cx, home().cy, 0),
                                                  selectBook(-1, { history: 'none' })));
  });

  $('open-ego').addEventListener('click', function () { openEgo(mapState.sel); });
  $('open-map').addEventListener('click', function () { openMap(state.centre); });
  $('to-map').addEventListener('click', function () { openMap(null, { fly: false }); });
