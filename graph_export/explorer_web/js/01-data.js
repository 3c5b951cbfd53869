  // data.js: The embedded graph: decoding the base64 columns, rows by book_index, text helpers.
  // ---- data ---------------------------------------------------------------
  var data = JSON.parse(document.getElementById('explorer-data').textContent);
  var N = data.n;
  var littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  function decode(b64, Type) {
    var bin = atob(b64);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    if (littleEndian) return new Type(bytes.buffer);
    var view = new DataView(bytes.buffer), out = new Type(bytes.length / 4);
    var isFloat = Type === Float32Array;
    for (var j = 0; j < out.length; j++) {
      out[j] = isFloat ? view.getFloat32(4 * j, true) : view.getInt32(4 * j, true);
    }
    return out;
  }

  var bookIndex = decode(data.book_index, Int32Array);   // row -> book_index (sorted)
  var offsets = decode(data.offsets, Int32Array);        // CSR: row's edges are
  var targets = decode(data.targets, Int32Array);        // offsets[row]..offsets[row+1]
  var cosines = decode(data.cosine, Float32Array);       // in rank order
  var titles = data.title;
  var authors = data.authors || null;
  var ratings = data.ratings_count || null;
  var avgRating = data.average_rating || null;
  var genres = data.genre || null;
  var genreNames = data.genre_names || [];
  var communities = data.community || null;
  var bookIds = data.book_id || null;

  function rowOf(index) {           // book_index -> row, or -1
    var lo = 0, hi = N - 1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1, v = bookIndex[mid];
      if (v === index) return mid;
      if (v < index) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
  }

  function fmtInt(v) { return v == null ? '' : Number(v).toLocaleString('en-US'); }
  function authorsOf(r) { return authors && authors[r] ? authors[r] : ''; }
  function titleOf(r) { return titles[r] || '(untitled book ' + bookIndex[r] + ')'; }
  function short(s, n) {           // cut by code points, so no emoji is split in half
    if (s.length <= n) return s;
    var cps = Array.from(s);
    return cps.length > n ? cps.slice(0, n - 1).join('') + '\u2026' : s;
  }
