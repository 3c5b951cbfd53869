  // cosine.js: Cosine of a shown book to the centre book, from the embedded edge cosines.
  // ---- cosine to the centre -------------------------------------------------
  // Exact when either book lists the other; otherwise only a bound is known:
  // a book outside both top-k lists is no closer than either list's last entry.
  function cosineToCentre(v, c) {
    if (v === c) return { exact: true, value: 1 };
    for (var e = offsets[c]; e < offsets[c + 1]; e++) {
      if (targets[e] === v) return { exact: true, value: cosines[e] };
    }
    for (var f = offsets[v]; f < offsets[v + 1]; f++) {
      if (targets[f] === c) return { exact: true, value: cosines[f] };
    }
    var bound = Infinity;
    if (offsets[c + 1] > offsets[c]) bound = Math.min(bound, cosines[offsets[c + 1] - 1]);
    if (offsets[v + 1] > offsets[v]) bound = Math.min(bound, cosines[offsets[v + 1] - 1]);
    return { exact: false, value: bound };
  }

  function cosineText(v, c) {
    var res = cosineToCentre(v, c);
    if (res.exact) return 'cosine to centre: ' + res.value.toFixed(3);
    if (res.value === Infinity) return 'cosine to centre: unknown';
    return 'cosine to centre: \u2264 ' + res.value.toFixed(3) + ' (outside both top-k lists)';
  }
