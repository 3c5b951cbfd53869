  // data.js: The embedded graph: inflating the packed columns, rows by book_index, text helpers.
  // ---- data ---------------------------------------------------------------
  // Every column is a byte-shuffled, zlib-compressed, base64 typed array (or NUL-joined
  // UTF-8 text): inflated with the browser's own DecompressionStream, no network.
  var data = JSON.parse(document.getElementById('explorer-data').textContent);
  var N = data.n;
  var littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  var TYPES = { u1: Uint8Array, u2: Uint16Array, i2: Int16Array, u4: Uint32Array,
                i4: Int32Array, f4: Float32Array };
  var NONE_U4 = 4294967295, NONE_U2 = 65535;

  var bookIndex, offsets, targets, cosines, titles, authors = null, bookIds = null;
  var ratings = null, avgRating = null, genres = null, genreNames = data.genre_names || [];
  var posX, posY, sizes, regions = null, communities = null;
  var coReaders = null, sharedAuthors = null, sharedShelves = null;
  var shelfNames = data.shelf_names || [];
  var groupTables = data.groups || {};

  function base64Bytes(b64) {
    if (typeof Uint8Array.fromBase64 === 'function') return Uint8Array.fromBase64(b64);
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function inflate(b64) {
    var stream = new Blob([base64Bytes(b64)]).stream()
      .pipeThrough(new DecompressionStream('deflate'));
    return new Response(stream).arrayBuffer().then(function (buf) { return new Uint8Array(buf); });
  }

  // Byte planes back to values: plane b holds byte b (little-endian) of every value.
  function unshuffle(bytes, Type) {
    var size = Type.BYTES_PER_ELEMENT, n = bytes.length / size;
    if (size === 1) return new Type(bytes.buffer, bytes.byteOffset, n);
    var out = new Uint8Array(bytes.length);
    for (var b = 0; b < size; b++) {
      var to = littleEndian ? b : size - 1 - b, from = b * n;
      for (var i = 0, j = to; i < n; i++, j += size) out[j] = bytes[from + i];
    }
    return new Type(out.buffer);
  }

  function unpackArray(packed) {
    var Type = TYPES[packed.type];
    if (!Type) return Promise.reject(new Error('unknown column type ' + packed.type));
    if (packed.n === 0) return Promise.resolve(new Type(0));
    return inflate(packed.data).then(function (bytes) { return unshuffle(bytes, Type); });
  }

  function unpackText(packed) {
    if (packed.n === 0) return Promise.resolve([]);
    return inflate(packed.data).then(function (bytes) {
      return new TextDecoder('utf-8').decode(bytes).split('\u0000');
    });
  }

  // Inflates every column; resolves when the globals above are set.
  function loadData() {
    var arrays = data.arrays, texts = data.texts, jobs = [];
    function take(packed, set, unpack) {
      if (packed) jobs.push((unpack || unpackArray)(packed).then(set));
    }
    take(arrays.book_index, function (a) { bookIndex = a; });
    take(arrays.offsets, function (a) { offsets = a; });
    take(arrays.targets, function (a) { targets = a; });
    take(arrays.cosine, function (a) { cosines = a; });
    take(arrays.x, function (a) { posX = a; });
    take(arrays.y, function (a) { posY = a; });
    take(arrays.size, function (a) { sizes = a; });
    take(arrays.ratings_count, function (a) { ratings = a; });
    take(arrays.average_rating, function (a) { avgRating = a; });
    take(arrays.genre, function (a) { genres = a; });
    take(arrays.region, function (a) { regions = a; });
    take(arrays.community, function (a) { communities = a; });
    take(arrays.co_readers, function (a) { coReaders = a; });
    take(arrays.shared_authors, function (a) { sharedAuthors = a; });
    take(arrays.shared_shelves, function (a) { sharedShelves = a; });
    take(texts.title, function (a) { titles = a; }, unpackText);
    take(texts.authors, function (a) { authors = a; }, unpackText);
    take(texts.book_id, function (a) { bookIds = a; }, unpackText);
    return Promise.all(jobs);
  }

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
  function ratingsOf(r) { return ratings && ratings[r] !== NONE_U4 ? ratings[r] : null; }
  function avgRatingOf(r) { return avgRating && avgRating[r] !== NONE_U2 ? avgRating[r] / 100 : null; }
  function short(s, n) {           // cut by code points, so no emoji is split in half
    if (s.length <= n) return s;
    var cps = Array.from(s);
    return cps.length > n ? cps.slice(0, n - 1).join('') + '\u2026' : s;
  }

  // Why two books are neighbours: "1,204 readers read both · same author · fantasy, magic".
  function reasonText(e) {
    var bits = [];
    if (coReaders && coReaders[e] !== NONE_U4) {
      bits.push(coReaders[e] === 1 ? '1 reader read both' : fmtInt(coReaders[e]) + ' readers read both');
    }
    if (sharedAuthors && sharedAuthors[e] > 0 && sharedAuthors[e] !== 255) {
      bits.push(sharedAuthors[e] === 1 ? 'same author' : sharedAuthors[e] + ' shared authors');
    }
    if (sharedShelves && sharedShelves[e] >= 0) bits.push(shelfNames[sharedShelves[e]]);
    return bits.join(' \u00b7 ');
  }

  function edgeBetween(a, b) {     // position of a's edge to b, or -1
    for (var e = offsets[a]; e < offsets[a + 1]; e++) if (targets[e] === b) return e;
    return -1;
  }
