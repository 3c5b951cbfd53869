  // search.js: Title/author search over one lower-cased haystack.
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
