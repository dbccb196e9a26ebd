# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DATA := data/demo-opencell
DEMO_RUN := models/cytoself/demo
DEMO_PROTEIN := ER_1
export TF_CPP_MIN_LOG_LEVEL := 3
export MPLBACKEND := Agg

.PHONY: demo test science bench install clean-demo

install: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	test -d $(DEMO_DATA) || bin/make-synthetic-data --out $(DEMO_DATA) --format opencell --seed 0
	bin/inspect-data $(DEMO_DATA)
	bin/train-cytoself --data $(DEMO_DATA) --preset demo --out $(DEMO_RUN) --resume
	bin/feature-spectrum $(DEMO_PROTEIN) --run $(DEMO_RUN) --data $(DEMO_DATA) --heatmap
	bin/umap-cytoself $(DEMO_RUN) --data $(DEMO_DATA) --level global --color-by family --score
	@echo "Demo outputs: $(DEMO_RUN)/figures (reconstructions), $(DEMO_RUN)/feature_spectrum, $(DEMO_RUN)/umap"

test: $(STAMP)
	$(PY) -m pytest -q --durations=15

science: $(STAMP)
	$(PY) -m pytest -q -m science --durations=0 -s

bench: $(STAMP)
	$(PY) bench/pipeline.py
	@for b in bench/train_*.py; do [ -f $$b ] && $(PY) $$b || true; done

clean-demo:
	rm -rf $(DEMO_DATA) $(DEMO_RUN)
