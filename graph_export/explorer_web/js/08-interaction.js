  // interaction.js: Interaction: tooltip and hover, pan and zoom, neighbour list, search box, controls.
  // ---- tooltip & hover ------------------------------------------------------
  function showTooltip(r, clientX, clientY) {
    $('tooltip-title').textContent = titleOf(r);
    $('tooltip-authors').textContent = authorsOf(r);
    var rc = ratingsOf(r) != null ? fmtInt(ratingsOf(r)) + ' ratings' : 'ratings: n/a';
    if (avgRatingOf(r) != null) rc += ' \u00b7 avg ' + avgRatingOf(r).toFixed(2);
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
    if (view !== 'ego') return;
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
      if (ratingsOf(r) != null) sub += (sub ? ' \u00b7 ' : '') + fmtInt(ratingsOf(r)) + ' ratings';
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
    if (view === 'map') selectBook(r, { fly: true });
    else setCentre(r);
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
  function initControls() {       // after the data: the colourings it offers
    colourModes.forEach(function (mode) {
      var opt = el('option', null, mode);
      opt.value = mode;
      colourSelect.appendChild(opt);
    });
    if (!colourModes.length) colourSelect.appendChild(el('option', null, 'none'));
  }
  colourSelect.addEventListener('change', function () {
    colourBy = colourSelect.value;
    if (view === 'map') recolour();
    else if (state.centre >= 0) render(false);
  });
