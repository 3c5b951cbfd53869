# Two commands do all set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   ?= demo_output
DEMO_RATINGS ?= 1000000
DEMO_BOOKS   ?= 20000
DEMO_USERS   ?= 20000

.PHONY: install demo test sample clean-demo

install: $(STAMP)

# Creates .venv once; re-installs only when the dependency pins change.
$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==26.3
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

sample: $(STAMP)
	$(PY) -m beam_jobs.sample_data --output $(DEMO)/goodreads --ratings $(DEMO_RATINGS) \
	    --books $(DEMO_BOOKS) --users $(DEMO_USERS) --seed 7

demo: sample
	@echo
	@echo "Demo outputs:"
	@echo "  sample data (UCSD Goodreads layout): $(abspath $(DEMO))/goodreads"

test: $(STAMP)
	$(PY) -m pytest -q tests

clean-demo:
	rm -rf $(DEMO)
