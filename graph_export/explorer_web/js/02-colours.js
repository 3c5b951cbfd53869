  // colours.js: Colouring nodes by a categorical column (genre, community), with a legend.
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
