// Parses graph files with the libraries web viewers use; prints a JSON summary.
//   node check_graph.js gexf FILE.gexf   -> strict XML 1.0 well-formedness (saxes, as
//                                           strict as a browser's DOMParser), then the
//                                           graphology-gexf parser
//   node check_graph.js json FILE.json   -> graphology Graph.from / import
// Exits non-zero with a message on any XML error, parse error or import error.
'use strict';
const fs = require('fs');
const Graph = require('graphology');
const gexf = require('graphology-gexf');
const {DOMParser} = require('@xmldom/xmldom');
const {SaxesParser} = require('saxes');

function summary(graph) {
  const nodes = [];
  graph.forEachNode((key, attrs) => nodes.push({key, attrs}));
  const edges = [];
  graph.forEachEdge((key, attrs, source, target) => edges.push({source, target, attrs}));
  return {type: graph.type, multi: graph.multi, order: graph.order, size: graph.size,
          attributes: graph.getAttributes(), nodes, edges};
}

function main() {
  const [kind, path] = process.argv.slice(2);
  if (!kind || !path) throw new Error('usage: node check_graph.js gexf|json FILE');
  const text = fs.readFileSync(path, 'utf8');
  let graph;
  if (kind === 'gexf') {
    // xmldom (graphology-gexf's DOM in node) silently repairs bad XML; browsers
    // do not. So first check well-formedness strictly, with namespaces.
    const sax = new SaxesParser({xmlns: true});
    let xmlError = null;
    sax.on('error', (err) => { xmlError = xmlError || err; });
    sax.write(text).close();
    if (xmlError) throw new Error('XML not well-formed: ' + xmlError.message);
    // xmldom only logs XML errors by default: make every one of them fatal.
    const fail = (level) => (msg) => { throw new Error('XML ' + level + ': ' + msg); };
    const doc = new DOMParser({
      onError: (level, msg) => { throw new Error('XML ' + level + ': ' + msg); },
      errorHandler: {warning: fail('warning'), error: fail('error'),
                     fatalError: fail('fatalError')},
    }).parseFromString(text, 'application/xml');
    graph = gexf.parse(Graph, doc);
  } else if (kind === 'json') {
    const data = JSON.parse(text);
    graph = new Graph(data.options);
    graph.import(data);
  } else {
    throw new Error('unknown kind ' + kind);
  }
  process.stdout.write(JSON.stringify(summary(graph)));
}

try {
  main();
} catch (err) {
  process.stderr.write('check_graph.js: ' + (err && err.message ? err.message : err) + '\n');
  process.exit(1);
}
