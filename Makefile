# Two entry points: `make run` (set up, run the embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, by plain pip: it resolves to the machine's local wheel where one is provided.
	# --no-compile: Python compiles what is imported, on first import; compiling every file of
	# torch up front took 37 s of a 97 s install on the 2-core dev machine (docs/benchmarks.md).
	$(BIN)/python -m pip install --quiet --no-compile "torch>=2.4" "torchvision>=0.19"
	$(BIN)/python -m pip install --quiet --no-compile -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/mlestar run

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs .pytest_cache
