# The course's commands. `make lab` and `make test` set everything up on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mmcourse-installed
JOBS ?= 2
# Models that chapters share are trained once into this cache (see mmcourse/zoo.py).
export MMCOURSE_CACHE ?= $(CURDIR)/.mmcourse-cache
# Under the tests a headline number that misses its bar fails the run; in a learner's session it warns.
export MMCOURSE_STRICT ?= 1
# One thread per test process: JOBS processes share the cores without oversubscribing them. -rs lists each skip
# with its reason (the browser tests skip, saying why, where there is no Chromium).
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(JOBS) --dist loadscope --nbval-lax --nbval-current-env \
	--durations=15 -rs

.PHONY: lab test chapter lint sync execute bench results readme clean compat

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

# As root (containers, many cloud VMs) JupyterLab refuses to start without --allow-root; the notebooks are trusted
# (the learner cloned them), so audio and animations show before they are re-run. No browser (a remote or headless
# machine)? JupyterLab prints the URL with its token: open it from your own browser.
LAB_FLAGS := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

lab: $(STAMP)  ## set up, then open JupyterLab on the course
	@test "$(LAB_FLAGS)" = "" || echo "running as root: starting JupyterLab with --allow-root"
	$(BIN)/jupyter trust notebooks/*.ipynb >/dev/null
	$(BIN)/python -m mmcourse.doctor --short
	$(BIN)/jupyter lab $(LAB_FLAGS) --config=jupyter_lab_config.py notebooks/00_landscape.ipynb

# The shared models are trained first on every core: under the tests each process has one thread, and the others
# would wait for them (videobert-tiny brings the video-tokenizer it reads).
test: $(STAMP) lint  ## set up, then run every test: unit, grader, exercises, notebooks (nbval)
	$(BIN)/python -m mmcourse.dev warm clip-tiny videobert-tiny tiny-lm llava-tiny unclip-tiny judge-tiny avsr-tiny
	$(PYTEST) tests notebooks solutions

chapter: $(STAMP)  ## one chapter's notebook, solutions, exercises and checks: make chapter CH=01
	@test -n "$(CH)" || (echo "usage: make chapter CH=01" && exit 2)
	$(PYTEST) tests notebooks/$(CH)_*.ipynb solutions/$(CH)_*.ipynb -k "$(CH)_ or $(CH)."

lint: $(STAMP)
	$(BIN)/ruff check .

sync: $(STAMP)  ## regenerate exercises/ from solutions/ and every .ipynb from its .py
	$(BIN)/python -m mmcourse.dev sync

execute: $(STAMP)  ## re-run lecture notebooks and save their outputs: make execute [CH=01]
	$(BIN)/python -m mmcourse.dev execute $(CH)

bench: $(STAMP)  ## wall seconds of every notebook (and the data / nn benchmarks)
	$(BIN)/python -m mmcourse.dev bench $(CH)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b; done

results: $(STAMP)  ## print the results table; `make readme` writes it into README.md
	$(BIN)/python -m mmcourse.dev results

readme: $(STAMP)
	$(BIN)/python -m mmcourse.dev readme

# Not part of `make test`: each env builds its own venv under .compat/ (torch with CUDA wheels from PyPI, ~6 GB)
# and runs the unit tests on one thread. Both envs always run; it fails if either does.
compat:  ## unit tests and widgets under Colab's versions (ipywidgets 7.7.1, torch 2.9) and pyproject's floors
	bash compat/run.sh colab; a=$$?; bash compat/run.sh floors; b=$$?; test $$a -eq 0 && test $$b -eq 0

clean:
	rm -rf $(VENV) .mmcourse-cache
