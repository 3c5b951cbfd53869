  // ego.js: The ego graph of one book (k nearest, their k nearest, ...) and its radial layout.
  // ---- ego graph ------------------------------------------------------------
  // Out-edges only (each book's own top-k), best-first by cosine at each level,
  // within a node budget so depth 3..4 stay readable and fast.
  function egoGraph(centre, depth) {
    var k = offsets[centre + 1] - offsets[centre];
    var depthOf = new Map([[centre, 0]]), parent = new Map(), children = new Map();
    var order = [centre], frontier = [centre], reachable = 1, truncated = false;
    children.set(centre, []);
    for (var d = 1; d <= depth && frontier.length; d++) {
      var budget = Math.max(NODE_BUDGET[d], 1 + k);
      var cands = [];
      for (var f = 0; f < frontier.length; f++) {
        var u = frontier[f];
        for (var e = offsets[u]; e < offsets[u + 1]; e++) {
          if (!depthOf.has(targets[e])) cands.push(e, u);
        }
      }
      var idx = [];
      for (var c = 0; c < cands.length; c += 2) idx.push(c);
      idx.sort(function (a, b) { return cosines[cands[b]] - cosines[cands[a]] || a - b; });
      var next = [];
      for (var j = 0; j < idx.length; j++) {
        var edge = cands[idx[j]], from = cands[idx[j] + 1], v = targets[edge];
        if (depthOf.has(v)) continue;
        if (order.length >= budget) { truncated = true; break; }
        depthOf.set(v, d); parent.set(v, from); children.set(v, []);
        children.get(from).push(v);
        order.push(v); next.push(v);
      }
      frontier = next;
    }
    reachable = order.length;
    // Edges among shown books, merged per pair. Beyond MAX_CROSS_EDGES only the
    // closest non-tree links are kept: more is a hairball and slow to paint.
    var pairs = new Map(), edges = [];
    for (var i = 0; i < order.length; i++) {
      var a = order[i];
      for (var x = offsets[a]; x < offsets[a + 1]; x++) {
        var b = targets[x];
        if (!depthOf.has(b)) continue;
        var key = a < b ? a * N + b : b * N + a;
        var seenEdge = pairs.get(key);
        if (seenEdge) { seenEdge.mutual = true; continue; }
        var ed = { a: a, b: b, cos: cosines[x], mutual: false,
                   tree: parent.get(b) === a || parent.get(a) === b };
        pairs.set(key, ed);
        edges.push(ed);
      }
    }
    var tree = edges.filter(function (ed) { return ed.tree; });
    var cross = edges.filter(function (ed) { return !ed.tree; });
    if (cross.length > MAX_CROSS_EDGES) {
      cross.sort(function (p, q) { return (q.mutual - p.mutual) || (q.cos - p.cos); });
      cross.length = MAX_CROSS_EDGES;
      edges = tree.concat(cross);
    }
    return { centre: centre, depth: depth, order: order, depthOf: depthOf, parent: parent,
             children: children, edges: edges, truncated: truncated, shown: reachable };
  }

  // Radial tree layout: ring d holds depth-d books; each subtree gets an angle
  // span proportional to its leaf count, children in rank order.
  function layout(ego, width, height) {
    var pos = new Map();
    var maxDepth = 0;
    ego.depthOf.forEach(function (d) { if (d > maxDepth) maxDepth = d; });
    var leaves = new Map();
    // Subtree weight: leaf count, damped on the first ring so its (labelled)
    // books stay evenly spread even when some have many more descendants.
    function countLeaves(u) {
      var kids = ego.children.get(u) || [], n = 0;
      for (var i = 0; i < kids.length; i++) n += countLeaves(kids[i]);
      n = Math.max(1, n);
      leaves.set(u, ego.depthOf.get(u) === 1 ? 1 + Math.sqrt(n) : n);
      return n;
    }
    countLeaves(ego.centre);
    // Rings are ellipses that use the pane's width (labels need it more than height).
    var R = Math.max(60, height / 2 - 40);
    var stretch = Math.max(1, Math.min(1.45, (width / 2 - 90) / R));
    var ringR = function (d) {
      if (maxDepth === 0) return 0;
      // Inner rings get a little more room for labels.
      return R * Math.pow(d / maxDepth, 0.8);
    };
    // Crowded rings: smaller dots, and every other dot nudged in or out.
    var perRing = [], seenOnRing = [];
    ego.depthOf.forEach(function (d) { perRing[d] = (perRing[d] || 0) + 1; });
    var scale = [1], stagger = [0];
    for (var d = 1; d <= maxDepth; d++) {
      var spacing = Math.PI * (1 + stretch) * ringR(d) / Math.max(1, perRing[d] || 1);
      var want = 2 * (BASE_RADIUS[Math.min(d, 3)] + (ratings ? 3 : 0)) + 2;
      scale[d] = Math.max(0.45, Math.min(1, spacing / want));
      stagger[d] = spacing < want ? Math.min(14, BASE_RADIUS[Math.min(d, 3)] * 1.6) : 0;
      seenOnRing[d] = 0;
    }
    pos.scale = scale;
    function place(u, a0, a1) {
      var d = ego.depthOf.get(u);
      var mid = (a0 + a1) / 2, r = ringR(d);
      if (d > 0 && d === maxDepth && stagger[d]) r += (seenOnRing[d]++ % 2 ? -1 : 1) * stagger[d] / 2;
      pos.set(u, { x: stretch * r * Math.cos(mid), y: r * Math.sin(mid), angle: mid });
      var kids = ego.children.get(u) || [], a = a0, total = 0;
      for (var k = 0; k < kids.length; k++) total += leaves.get(kids[k]);
      if (d === 0 && kids.length) a = -Math.PI / 2 - Math.PI * leaves.get(kids[0]) / total;
      for (var i = 0; i < kids.length; i++) {
        var span = (d === 0 ? 2 * Math.PI : a1 - a0) * leaves.get(kids[i]) / total;
        place(kids[i], a, a + span);
        a += span;
      }
    }
    place(ego.centre, 0, 2 * Math.PI);
    pos.get(ego.centre).x = 0; pos.get(ego.centre).y = 0;
    return pos;
  }
