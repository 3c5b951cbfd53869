# Two commands do all set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   ?= demo_output
DEMO_RATINGS ?= 1000000
DEMO_BOOKS   ?= 20000
DEMO_USERS   ?= 20000

.PHONY: install demo test test-fast sample screenshot map-picture clean-demo scale

install: $(STAMP)

# Creates .venv once; re-installs only when the dependency pins change.
$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==26.3
	$(PY) -m pip install -q -c constraints.txt -e '.[test,bench]'
	touch $(STAMP)

sample: $(STAMP)
	$(PY) -m sample_goodreads --output $(DEMO)/goodreads --ratings $(DEMO_RATINGS) \
	    --books $(DEMO_BOOKS) --users $(DEMO_USERS) --seed 7

# The whole chain on the local (offline) runner; each stage reads the previous
# stage's documented output by path. Outputs are rebuilt from scratch each time.
demo: $(STAMP)
	rm -rf $(DEMO)
	$(MAKE) --no-print-directory sample
	$(PY) -m beam_jobs.preprocess --input $(DEMO)/goodreads --output $(DEMO)/preprocessed \
	    --top_books 3000 --min_user_ratings 2
	$(PY) -m model.train --data $(DEMO)/preprocessed --output $(DEMO)/model --verbose 2
	$(PY) -m graph_export.neighbors --embeddings $(DEMO)/model --catalog $(DEMO)/preprocessed \
	    --output $(DEMO)/graph
	$(PY) -m graph_export.coread --data $(DEMO)/preprocessed --graph $(DEMO)/graph
	$(PY) -m graph_export.ego --graph $(DEMO)/graph --depth 3 --output $(DEMO)/ego/book_100 \
	    --book_id $$($(PY) -c "import pandas as p; n = p.read_parquet('$(DEMO)/graph/nodes.parquet'); print(n[n.book_index == 100].book_id.iloc[0])")
	$(PY) -m graph_export.explorer --graph $(DEMO)/graph --output $(DEMO)/explorer.html
	$(PY) -m graph_export.picture --graph $(DEMO)/graph --output $(DEMO)/map.png
	@echo
	@echo "Demo outputs:"
	@echo "  sample data (UCSD Goodreads layout): $(abspath $(DEMO))/goodreads"
	@echo "  preprocessed TFRecords + catalogue:  $(abspath $(DEMO))/preprocessed"
	@echo "  model, metrics, embeddings:          $(abspath $(DEMO))/model (metrics.json, metrics.png)"
	@echo "  graph for Gephi (GEXF 1.3):          $(abspath $(DEMO))/graph/graph.gexf"
	@echo "  the map's coread@10 and its peers':  $(abspath $(DEMO))/graph/summary.json (coread)"
	@echo "  the map as a picture:                $(abspath $(DEMO))/map.png (regions: graph/communities.parquet)"
	@echo "  graph for sigma.js / d3 (JSON):      $(abspath $(DEMO))/graph/graph.json, graph.nodelink.json"
	@echo "  ego graph of the 101st most-read book: $(abspath $(DEMO))/ego/book_100.{gexf,json,png}"
	@echo "  explorer (open in a browser, works offline): $(abspath $(DEMO))/explorer.html"

# Picture of the demo map for the README (positions and region colours and names).
map-picture:
	$(PY) -m graph_export.picture --graph $(DEMO)/graph --output docs/map.png

# Picture of the demo explorer for the README: the whole map, as the page opens.
screenshot:
	bash .ci/install_browser.sh
	$(PY) -m tests.browser.screenshot $(DEMO)/explorer.html docs/explorer.png

test: $(STAMP)
	$(PY) -m pytest -q tests

# The inner loop: everything but the slow modules, the browser and the fault suite.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser and not faults" tests

# The whole chain on 100M generated interactions (876k users, 1M books), stage by stage:
# time, throughput and peak memory (benchmarks/bench_scale.py; ~3 GB of data and the
# outputs under /tmp/bench_scale, reused on the next run). Options: SCALE_ARGS="--help".
scale: $(STAMP)
	$(PY) -m benchmarks.bench_scale $(SCALE_ARGS)

clean-demo:
	rm -rf $(DEMO)
