# Two entry points: `make run` (set up, run the embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# setuptools>=70.1 builds wheels by itself: stage 7 ships mlestar as a wheel built from this tree
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=70.1"
	# torch first, by plain pip: it resolves to the machine's local wheel where one is provided.
	$(BIN)/python -m pip install --quiet "torch>=2.4" "torchvision>=0.19"
	$(BIN)/python -m pip install --quiet -e ".[images,dev]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/mlestar run

# Two workers on a 2-core machine halve the wall time (300 s against 530 s, docs/benchmarks.md);
# more cores get more workers, up to 4.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs .pytest_cache
