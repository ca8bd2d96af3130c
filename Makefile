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

# nbval in lax mode: every cell must run without error (the assertion cells check the findings,
# over seeds, with stated margins); printed outputs are compared only in cells marked
# NBVAL_CHECK_OUTPUT, which print nothing that a fit computes. Float rounding differs between CPUs
# and thread counts, so no fitted number is compared digit for digit.
NBVAL  := --nbval-lax --nbval-current-env --nbval-sanitize-with nbval_sanitize.cfg
# The paper's benchmark sets for the chapters that read them (11): a local copy beside the
# repository when there is one (offline, as CI is), else dipkit.datasets fetches them by name.
SHARED_DATA := $(abspath ../shared/data)
DATA_ENV := $(if $(wildcard $(SHARED_DATA)/set9),DIPKIT_DATA=$${DIPKIT_DATA:-$(SHARED_DATA)},)
NBVAL_ENV := DIPKIT_PROFILE=$${DIPKIT_PROFILE:-quick} $(DATA_ENV)
NOTEBOOKS := $(wildcard notebooks/*.ipynb)

.PHONY: test book book-check unit notebooks install chromium clean results device pin release

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) "torch==2.13.0" -e ".[test,book]" 2>&1 | $(QUIET_PIP)
	$(BIN)/python -c "import dipkit, torch; print('dipkit', dipkit.__version__, 'torch', torch.__version__)"
	touch $(STAMP)

# Headless Chromium for the browser test of the book (tests/test_book_pages.py, driven by
# Playwright, which never downloads a browser here): Debian's package, installed when
# /usr/bin/chromium is missing and we are root with apt-get. Otherwise a note: that test then
# skips, except under CI=true, where it fails. DIPKIT_CHROMIUM=/path/to/chromium uses another one.
CHROMIUM_BIN ?= /usr/bin/chromium
chromium:
	@if [ -n "$${DIPKIT_CHROMIUM:-}" ] || [ -x $(CHROMIUM_BIN) ]; then true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the browser test of the book (apt-get, about a minute)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	    || echo "WARNING: apt-get could not install chromium: tests/test_book_pages.py will skip (and fail under CI=true)"; \
	else \
	  echo "NOTE: no $(CHROMIUM_BIN), and installing Debian's chromium needs root and apt-get:"; \
	  echo "      tests/test_book_pages.py will skip (and fail under CI=true). Install Chromium, or set DIPKIT_CHROMIUM."; \
	fi

# The whole suite: unit tests and nbval over the chapters (quick profile: no GPU in CI), in one
# pytest run, then a book build from the outputs that nbval has just checked, whose every page
# book-check opens in Chromium (tests/test_book_pages.py runs there, on that build, not here).
test: $(STAMP) chromium
	$(NBVAL_ENV) $(BIN)/python -m pytest tests $(NOTEBOOKS) $(NBVAL) -q --durations=0 --durations-min=20 \
	  --ignore=tests/test_book_pages.py
	$(MAKE) --no-print-directory book-check

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q

notebooks: $(STAMP)
	$(NBVAL_ENV) $(BIN)/python -m pytest $(NOTEBOOKS) $(NBVAL) -q --durations=0 --durations-min=20

# The main job: a clean build that executes every chapter in this machine's profile; a failing
# cell or any warning fails it.
book: $(STAMP)
	rm -rf _build
	$(DATA_ENV) $(BIN)/jupyter-book build . -W -n --keep-going

# The same build without executing: renders the committed outputs (which nbval checks), so that
# `make test` catches broken pages, references and citations without running every chapter twice;
# then every page of it in headless Chromium (tests/book_pages.py: images that do not load, broken
# internal links and anchors, tracebacks or error outputs on a page, console errors), with a
# full-page screenshot of each in _build/screenshots/ (and report.txt there) for a human look.
book-check: $(STAMP) chromium
	rm -rf _build
	mkdir -p _build
	sed 's/^  execute_notebooks: .*/  execute_notebooks: "off"/' _config.yml > _build/_config_noexec.yml
	$(BIN)/jupyter-book build . -W -n --keep-going --config _build/_config_noexec.yml
	DIPKIT_BOOK_HTML=_build/html $(BIN)/python -m pytest tests/test_book_pages.py -q -p no:cacheprovider

# Recompute the stored results of every experiment of the book at a profile (resumable: what is
# stored is skipped; add RECOMPUTE=--recompute to fit everything again).
PROFILE ?= quick
EXPERIMENTS ?= $(shell $(BIN)/python -c "from dipkit.experiments import EXPERIMENTS; print(' '.join(EXPERIMENTS))" 2>/dev/null)
results: $(STAMP)
	for e in $(EXPERIMENTS); do $(BIN)/dipkit experiments run $$e --profile $(PROFILE) $(RECOMPUTE) || exit 1; done

# One prepared run on a GPU machine (issue 12): chapter 10's protocol and the λ sweep at the full
# profile, then the benchmark suite, within $DEVICE_BUDGET_S (default 540 s), into $OUT. No
# $(STAMP): the device has no network, so it runs its own python3. DRY_RUN=1 runs it on the CPU at
# toy sizes (CI does, in tests/test_device_script.py). See the header of benchmarks/device.sh.
device:
	bash benchmarks/device.sh

clean:
	rm -rf _build .pytest_cache

# Colab: every chapter's badge and set-up install point to the release tag v<version> of
# pyproject.toml (book/colab.py; tests/test_chapters.py checks them). After changing the version:
# `make pin`, commit, then `make release` tags that commit (push the tag with the branch).
pin: $(STAMP)
	$(BIN)/python book/colab.py

release: $(STAMP)
	$(BIN)/python -m pytest tests/test_chapters.py -q
	git tag -a "v$$($(BIN)/python -c 'import dipkit; print(dipkit.__version__)')" -m "dipkit and the book's stored results"
