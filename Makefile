# desfs developer entry points. `make demo` and `make test` each set up what they need.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.desfs-installed
MNT    ?= $(CURDIR)/mnt
PYTEST_ARGS ?=

.PHONY: setup demo test lint typecheck unit bench bench-quick bench-fleet bench-serve bench-stores clean install uninstall

$(STAMP): pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh

setup: $(STAMP)

## Mount the bundled sample archive, show it with ordinary tools, unmount.
demo: $(STAMP)
	scripts/demo.sh "$(MNT)"

LINTED := desfs tests scripts $(wildcard bench) $(wildcard fuzz)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## Everything CI runs: lint, types, and the whole test suite (unit, contract, real mounts).
test: lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench.run --mode full

bench-quick: $(STAMP)
	$(PY) -m bench.run --mode quick

## k mounts of one S3 source walking a day cold, with and without the shared index cache.
bench-fleet: $(STAMP)
	$(PY) -m bench.fleet

## desfs serve beside the mount: small files per second and a large file's MiB/s.
bench-serve: $(STAMP)
	$(PY) -m bench.serve

## datas3t2, s4db and ConduitFlatFileDB beside DES2 on the bench's small files.
bench-stores: $(STAMP)
	$(PY) -m bench.stores

## Install for the whole system (/opt/desfs, /usr/local/bin, /sbin, units, man pages,
## completion); `make uninstall` removes it. Both take PREFIX, BINDIR, ... (scripts/install.sh).
install:
	scripts/install.sh

uninstall:
	scripts/uninstall.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
