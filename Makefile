# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
INSTALL = $(PY) -m pip install -q
# A venv this Makefile makes is marked first ($(MADE)); only such a venv is ever deleted by it.
MADE := $(VENV)/.made-by-make
NEW_VENV = { { test -d $(VENV) || { mkdir -p $(VENV) && touch $(MADE); }; } && $(PYTHON) -m venv $(VENV); }

.PHONY: demo test bench venv clean

# An interrupted `python -m venv` leaves a python without pip: pip is restored with ensurepip;
# when that fails too, a venv this Makefile made is made again (any other one is left to you).
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(NEW_VENV)
	$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip --upgrade >/dev/null 2>&1 || \
	  if test -f $(MADE); then echo "$(VENV) has no working pip: making it again"; \
	    rm -rf $(VENV) && $(NEW_VENV); \
	  else echo "$(VENV) has no working pip and was not made by this Makefile: repair or delete it" >&2; \
	    exit 1; fi
	$(INSTALL) --upgrade pip
	$(INSTALL) torch==2.13.0
	$(INSTALL) -e .[test]
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	cd recipes/synth_digits && PATH=$(CURDIR)/$(VENV)/bin:$$PATH ./run.sh

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf recipes/*/data recipes/*/exp
