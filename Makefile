# Two commands on a fresh clone:
#   make test   set up .venv and run the whole test suite
#   make book   set up .venv and build the book (executing the notebooks)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CI's pins (CPU torch 2.13.0 from this machine's disk, Jupyter Book v1); pyproject.toml stays open.
CONSTRAINTS ?= constraints-ci.txt
STAMP  := $(VENV)/.installed
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip's notes about this machine's optional local indexes are noise: filter them out.
QUIET_PIP := { grep -v "^WARNING: Location" || true; }

.PHONY: test book unit install clean

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) "torch==2.13.0" -e ".[test,book]" 2>&1 | $(QUIET_PIP)
	$(BIN)/python -c "import dipkit, torch; print('dipkit', dipkit.__version__, 'torch', torch.__version__)"
	touch $(STAMP)

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q

test: unit

book: $(STAMP)
	rm -rf _build
	$(BIN)/jupyter-book build . -W -n --keep-going

clean:
	rm -rf _build .pytest_cache
