# Two commands set up a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test venv servers bench bench-log evaluate probe soak clean

# PYTHONWARNINGS reaches pip's build backend: setuptools warns on every editable install that a
# folder named like the package may shadow it, and that folder is this checkout, by design.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet -e '.[test,report]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's Prometheus and Alertmanager for the tests that run the real servers.
servers:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null \
	     || ! command -v prometheus-alertmanager >/dev/null; then \
	  if command -v apt-get >/dev/null; then \
	    $(SUDO) apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends \
	      prometheus prometheus-alertmanager; \
	  else echo "install Prometheus and Alertmanager (promtool, prometheus, prometheus-alertmanager)"; exit 1; fi; \
	fi

demo: $(STAMP)
	$(VENV)/bin/countwatch demo

test: $(STAMP) servers
	COUNTWATCH_NO_SKIP=1 $(PY) -m pytest -q

# Issue 15's figures beside their targets, one table (docs/scaling.md): a quarter-sized tree
# by default (~20 minutes here); `$(PY) bench/scaling.py --scale 1` for the 2024-sized one.
bench: $(STAMP)
	$(PY) bench/scaling.py

# The cost of one poll log line (docs/scaling.md).
bench-log: $(STAMP)
	$(PY) bench/logline.py

evaluate: $(STAMP)
	$(VENV)/bin/countwatch evaluate

# Laws the families do not sweep (other cadences, hourly variants, a small region): checked by
# hand, outside `make evaluate` (bench/probe_families.py says why); ~4 minutes.
probe: $(STAMP)
	$(PY) bench/probe_families.py

soak: $(STAMP)
	$(PY) bench/soak.py

clean:
	rm -rf $(VENV) var build *.egg-info
