  // dom.js: DOM and SVG helpers, and the page's fixed elements.
  // ---- DOM helpers ----------------------------------------------------------
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }
  function svgEl(tag, attrs) {
    var node = document.createElementNS(SVG_NS, tag);
    for (var name in attrs) node.setAttribute(name, attrs[name]);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  var $ = function (id) { return document.getElementById(id); };
  var svg = $('graph'), searchInput = $('search'), resultsList = $('search-results');
  var depthInput = $('depth'), depthValue = $('depth-value'), colourSelect = $('colour-by');
  var tooltip = $('tooltip'), pane = $('graph-pane');

  var viewport = svgEl('g', { id: 'viewport' });
  var edgeLayer = svgEl('g', { id: 'edge-layer' });
  var hiPath = svgEl('path', { class: 'edges-hi', id: 'edges-hi' });
  var nodeLayer = svgEl('g', { id: 'node-layer' });
  viewport.appendChild(edgeLayer);
  viewport.appendChild(hiPath);
  viewport.appendChild(nodeLayer);
  svg.appendChild(viewport);

  // Map elements and which view is on screen ('map' or 'ego').
  var view = 'map';
  var mapCanvas = $('map'), labelLayer = $('map-labels');
