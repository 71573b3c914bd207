# Two commands set everything up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
INDEX ?= .citeqa
CORPUS ?= corpus
HOST ?= 127.0.0.1
PORT ?= 8000
export HF_HUB_OFFLINE := 1

.PHONY: run test index lint bench clean install

# The stamp is remade when pyproject.toml changes, so `make` reinstalls after a dependency bump.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install torch==2.13.0 -e '.[dev,cluster]'
	touch $@

install: $(VENV)/.installed

index: install
	$(BIN)/qa index $(CORPUS) --index $(INDEX)

run: index
	$(BIN)/qa serve --index $(INDEX) --host $(HOST) --port $(PORT)

test: install
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing Debian's chromium for the browser tests"; \
		(apt-get update -qq && apt-get install -y -qq chromium) || echo "warning: could not install chromium; browser tests will be skipped"; \
	fi
	$(BIN)/ruff check index qa web eval tests
	$(BIN)/mypy index qa web
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m eval.bench

lint: install
	$(BIN)/ruff check index qa web eval tests
	$(BIN)/mypy index qa web
	$(BIN)/ruff format --check index qa web eval tests

clean:
	rm -rf $(INDEX) .pytest_cache .ruff_cache
