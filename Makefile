# The two commands of the README: `make dev` (backend on :9090) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: dev test install clean package invoke-demo

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt $(wildcard requirements/*.txt)   # the pins: requirements/
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (found %s); set PYTHON=python3.12" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# `sls invoke local` runs `python3.12` from PATH: give it the project's virtualenv under that name.
$(BIN)/python3.12: $(VENV)/.installed
	[ -e $@ ] || ln -s python $@

dev: $(VENV)/.installed
	$(BIN)/python -m functions.dev

test: install $(BIN)/python3.12
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

# The deploy params `sls package` needs (README, "Deploy to AWS"); the zips are the same whatever they are.
SLS_PARAMS ?= --param=credentials=generate
package: node_modules/.installed   # the deployment artifacts, offline: .serverless/api.zip and train.zip
	npx sls package --stage $(or $(STAGE),dev) $(SLS_PARAMS)

invoke-demo: install $(BIN)/python3.12   # both handlers through `sls invoke local`, local store
	PATH="$(CURDIR)/$(BIN):$$PATH" infra/invoke_local.sh

clean:
	rm -rf $(VENV) node_modules .serverless .pytest_cache .model-store
