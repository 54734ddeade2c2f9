# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,dask,pyg]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/amlgraph demo

# Two pytest workers (pytest-xdist): the suite spends half its time waiting on the processes it
# starts, so two workers on two cores take ~0.6x the time of one (docs/BENCHMARKS.md, "Test suite").
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal

# The inner loop (under a minute): the steps, the store, the generator, the graph, the layering;
# no end-to-end runs, no processes killed. `make test` is the whole suite.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" tests/steps tests/store tests/synth \
		tests/graph/test_graph.py tests/test_layers.py tests/test_config_docs.py tests/test_compat.py

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .demo
