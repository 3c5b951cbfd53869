  // config.js: Constants of the viewer: colours, node budgets per depth, map sizes.
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948',
                 '#b07aa1', '#ff9da7', '#9c755f', '#3f9bd5', '#8cd17d', '#d37295'];
  var OTHER_COLOUR = '#bab0ac';
  // Most nodes drawn for each depth: enough for k=10 at depth 2, bounded beyond.
  var NODE_BUDGET = [1, 60, 160, 260, 360];
  var SEARCH_CAP = 12;
  var MAX_CROSS_EDGES = 400;
  var BASE_RADIUS = [13, 8, 5.5, 4];   // dot radius by depth (plus a little for popularity)
  var LIST_SIZE = 10;
  var SEP = '\u0001';
  // Map: background, label budget and sizes (CSS px), fly-to duration.
  var MAP_BG = [247, 246, 242];
  var MAX_TITLE_LABELS = 90;
  var LABEL_CELL = 8;                  // the screen-space label grid's cell (px)
  var CHAR_W = { region: 8.6, community: 6.9, title: 6.3 };   // estimated px per character
  var LINE_H = { region: 20, community: 16, title: 15 };
  var FLY_MS = 650;
