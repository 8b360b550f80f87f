# The two commands of the README:
#   make book   install into .venv (first time only) and build the website into _build/html
#   make test   install, then unit tests, nbval over executed/, the book, browser tests
# Other targets: make executed (re-run every chapter into executed/ for nbval), make install,
# make chromium, make unit, make nbval, make browser, make clean.
#
# Installs happen once: .venv/.installed is a stamp, redone when pyproject.toml changes.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := book

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
SITE := _build/html
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The kernels that papermill, nbval and the book start must come from .venv.
export PATH := $(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PYTHONDONTWRITEBYTECODE := 1
# Matplotlib writes its font cache here, once (a first-run message on stderr would otherwise
# appear in the first executed chapter and fail nbval and the -W book build).
export MPLCONFIGDIR := $(CURDIR)/$(VENV)/mplconfig

PYTEST := $(BIN)/pytest -p no:cacheprovider
NBVAL := $(PYTEST) --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
         --nbval-cell-timeout 1800
JB_BUILD := $(BIN)/jupyter-book build . --all -W -n --keep-going

.PHONY: book test install chromium unit nbval browser executed clean

install: $(STAMP)

# torch goes first: 2.13.0 is the CPU build on this machine's disk; installing it before the
# rest keeps pip from pulling a multi-GB CUDA build from PyPI for the packages that need torch.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), \
	  f"Python 3.11 is needed, $(PYTHON) is {sys.version.split()[0]}"'
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -c 'import matplotlib.pyplot'
	touch $@

book: $(STAMP)
	$(JB_BUILD)
	@echo "The book is in $(SITE)/index.html"

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "installing Debian's chromium"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	fi

unit: $(STAMP)
	$(PYTEST) -m "not browser" tests

nbval: $(STAMP)
	$(NBVAL) executed

browser: $(STAMP) chromium
	$(PYTEST) -m browser tests/test_book_browser.py

test: $(STAMP) chromium
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory nbval
	$(MAKE) --no-print-directory book
	$(MAKE) --no-print-directory browser

# Every chapter of _toc.yml, with its default parameters, into executed/ (commit the result).
executed: $(STAMP)
	for chapter in $$($(BIN)/ncf-vs-mf chapters --names); do \
	  $(BIN)/ncf-vs-mf run "$$chapter" -o executed; \
	done

clean:
	rm -rf _build
