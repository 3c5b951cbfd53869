  // colours.js: Colouring books by region, community or genre (one fixed colour per group,
  // the same on the map and in the ego graph), with names for the legend.
  // ---- colours --------------------------------------------------------------
  var colourModes = [], colourBy = 'none';
  var groupColours = {};           // mode -> [[r, g, b] per code]

  function hexRgb(hex) {
    return [parseInt(hex.slice(1, 3), 16), parseInt(hex.slice(3, 5), 16), parseInt(hex.slice(5, 7), 16)];
  }
  function rgbHex(c) {
    return '#' + c.map(function (v) { return (v < 16 ? '0' : '') + v.toString(16); }).join('');
  }
  function hslRgb(h, s, l) {
    var a = s * Math.min(l, 1 - l);
    function f(n) {
      var k = (n + h / 30) % 12;
      return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
    }
    return [f(0), f(8), f(4)];
  }
  // The biggest groups get the palette; the rest golden-angle hues (distinct, stable).
  function coloursFor(sizesOfGroups) {
    var order = sizesOfGroups.map(function (s, i) { return i; });
    order.sort(function (a, b) { return sizesOfGroups[b] - sizesOfGroups[a] || a - b; });
    var out = new Array(sizesOfGroups.length);
    order.forEach(function (code, rank) {
      out[code] = rank < PALETTE.length ? hexRgb(PALETTE[rank])
        : hslRgb((rank * 137.508) % 360, 0.5 + 0.2 * (rank % 3) / 2, 0.42 + 0.14 * (rank % 4) / 3);
    });
    return out;
  }

  function initColours() {
    if (regions && groupTables.region) colourModes.push('region');
    if (communities && groupTables.community) colourModes.push('community');
    if (genres) colourModes.push('genre');
    colourModes.forEach(function (mode) {
      var sizesOfGroups = mode === 'genre' ? genreNames.map(function () { return 1; })
        : groupTables[mode].size;
      groupColours[mode] = mode === 'genre'
        ? genreNames.map(function (g, i) { return hexRgb(PALETTE[i % PALETTE.length]); })
        : coloursFor(sizesOfGroups);
    });
    colourBy = colourModes[0] || 'none';
  }

  function codeOf(mode, r) {
    if (mode === 'region') return regions[r];
    if (mode === 'community') return communities[r];
    if (mode === 'genre') return genres[r];
    return -1;
  }
  function groupName(mode, code) {
    if (code < 0) return 'unknown';
    return mode === 'genre' ? genreNames[code] : groupTables[mode].name[code];
  }

  function category(r) {   // [key, label] of a row under the current colouring
    if (colourBy === 'none') return null;
    var code = codeOf(colourBy, r);
    return code < 0 ? null : [code, groupName(colourBy, code)];
  }

  function rgbOf(r) {
    if (colourBy === 'none') return hexRgb(OTHER_COLOUR);
    var code = codeOf(colourBy, r);
    return code < 0 ? hexRgb(OTHER_COLOUR) : groupColours[colourBy][code];
  }
  function colourOf(r) { return rgbHex(rgbOf(r)); }
