  // map-input.js: Pan (drag), zoom (wheel, pinch, buttons), reset, hover and click on the map.
  // ---- map input -------------------------------------------------------------------
  var pointers = new Map(), mapDrag = null;

  function panePoint(ev) {
    var box = mapCanvas.getBoundingClientRect();
    return [ev.clientX - box.left, ev.clientY - box.top];
  }

  function showMapTooltip(r, ev) {
    if (r < 0) { hideTooltip(); return; }
    $('tooltip-title').textContent = titleOf(r);
    $('tooltip-authors').textContent = authorsOf(r);
    var rc = ratingsOf(r) != null ? fmtInt(ratingsOf(r)) + ' ratings' : '';
    if (avgRatingOf(r) != null) rc += (rc ? ' \u00b7 ' : '') + 'avg ' + avgRatingOf(r).toFixed(2);
    $('tooltip-ratings').textContent = rc;
    var line = '', sel = mapState.sel;
    if (sel >= 0 && r !== sel) {   // why it is a neighbour of the chosen book
      var e = edgeBetween(sel, r);
      if (e < 0) e = edgeBetween(r, sel);
      if (e >= 0) line = reasonText(e) || 'cosine ' + cosines[e].toFixed(3);
    }
    if (!line && communities && communities[r] >= 0) line = groupName('community', communities[r]);
    $('tooltip-cosine').textContent = line;
    tooltip.hidden = false;
    tooltip.setAttribute('data-book-index', bookIndex[r]);
    var box = pane.getBoundingClientRect(), tw = tooltip.offsetWidth, th = tooltip.offsetHeight;
    var x = ev.clientX - box.left + 14, y = ev.clientY - box.top + 14;
    if (x + tw > box.width - 4) x = ev.clientX - box.left - tw - 14;
    if (y + th > box.height - 4) y = ev.clientY - box.top - th - 14;
    tooltip.style.transform = 'translate(' + Math.max(4, x) + 'px,' + Math.max(4, y) + 'px)';
  }

  mapCanvas.addEventListener('pointerdown', function (ev) {
    if (ev.pointerType === 'mouse' && ev.button !== 0) return;
    stopFlight();
    mapCanvas.setPointerCapture(ev.pointerId);
    pointers.set(ev.pointerId, panePoint(ev));
    var p = panePoint(ev);
    mapDrag = { x: p[0], y: p[1], cx: mapState.cx, cy: mapState.cy, moved: false, pinch: null };
    mapCanvas.classList.add('panning');
  });

  mapCanvas.addEventListener('pointermove', function (ev) {
    var p = panePoint(ev);
    if (!mapDrag) {                          // hover
      var r = pick(p[0], p[1]);
      if (r !== mapState.hover) mapState.hover = r;
      mapCanvas.style.cursor = r >= 0 ? 'pointer' : '';
      showMapTooltip(r, ev);
      return;
    }
    pointers.set(ev.pointerId, p);
    hideTooltip();
    if (pointers.size >= 2) {                // pinch: zoom by the change of distance
      var pts = Array.from(pointers.values()).slice(0, 2);
      var d = Math.hypot(pts[0][0] - pts[1][0], pts[0][1] - pts[1][1]);
      var mx = (pts[0][0] + pts[1][0]) / 2, my = (pts[0][1] + pts[1][1]) / 2;
      if (mapDrag.pinch) {
        zoomAround(Math.log2(d / mapDrag.pinch.d), mx, my);
        var s = scaleAt(mapState.z);
        setCamera(mapState.cx - (mx - mapDrag.pinch.x) / s, mapState.cy + (my - mapDrag.pinch.y) / s, mapState.z);
      }
      mapDrag.pinch = { d: Math.max(d, 1), x: mx, y: my };
      mapDrag.moved = true;
      return;
    }
    var dx = p[0] - mapDrag.x, dy = p[1] - mapDrag.y;
    if (Math.abs(dx) + Math.abs(dy) > 4) mapDrag.moved = true;
    if (mapDrag.moved) {
      var s1 = scaleAt(mapState.z);
      setCamera(mapDrag.cx - dx / s1, mapDrag.cy + dy / s1, mapState.z);
    }
  });

  function endPointer(ev) {
    pointers.delete(ev.pointerId);
    if (!mapDrag) return;
    if (pointers.size > 0) { mapDrag.pinch = null; return; }
    var wasClick = !mapDrag.moved && ev.type === 'pointerup';
    mapDrag = null;
    mapCanvas.classList.remove('panning');
    if (wasClick) {
      var p = panePoint(ev), r = pick(p[0], p[1]);
      if (r >= 0) selectBook(r, { fly: 'auto' });
      else if (mapState.sel >= 0) selectBook(-1);
    }
  }
  mapCanvas.addEventListener('pointerup', endPointer);
  mapCanvas.addEventListener('pointercancel', endPointer);
  mapCanvas.addEventListener('pointerleave', function () { if (!mapDrag) hideTooltip(); });

  mapCanvas.addEventListener('wheel', function (ev) {
    ev.preventDefault();
    stopFlight();
    var p = panePoint(ev), dy = ev.deltaMode === 1 ? ev.deltaY * 30 : ev.deltaY;
    zoomAround(-dy * 0.002, p[0], p[1]);
  }, { passive: false });
  mapCanvas.addEventListener('dblclick', function (ev) {
    var p = panePoint(ev);
    stopFlight();
    zoomAround(1, p[0], p[1]);
  });

  $('zoom-in').addEventListener('click', function () {
    flyTo({ cx: mapState.cx, cy: mapState.cy, z: Math.min(maxZoom(), mapState.z + 1) }, 250);
  });
  $('zoom-out').addEventListener('click', function () {
    flyTo({ cx: mapState.cx, cy: mapState.cy, z: Math.max(-1, mapState.z - 1) }, 250);
  });
  $('zoom-reset').addEventListener('click', function () { flyTo(home(), 400); });
  document.addEventListener('keydown', function (ev) {
    if (view !== 'map' || ev.target === searchInput) return;
    if (ev.key === 'Escape' && mapState.sel >= 0) selectBook(-1);
    else if (ev.key === '+' || ev.key === '=') $('zoom-in').click();
    else if (ev.key === '-') $('zoom-out').click();
    else if (ev.key === '0') $('zoom-reset').click();
  });
  window.addEventListener('resize', function () {
    if (!renderer) return;
    resizeMap();
    requestDraw();
  });
