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

.PHONY: demo demo-statcell test science bench bench-gpu install clean-demo

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

# Statistical Cell on synthetic Allen-style cells: every command once, demo preset, 32×32 px.
SC_DATA := data/demo-allencell
SC_RUNS := models/statcell/demo
SC_TRAIN := --dims 2 --preset demo --epochs 40 --batch-size 16 --eval-samples 2 --resume
demo-statcell: $(STAMP)
	test -d $(SC_DATA) || bin/make-synthetic-data --out $(SC_DATA) --format allencell --families 6 --cells 40 --size 32 --seed 0
	test -d $(SC_DATA)-controls || bin/add-control-structures $(SC_DATA)/manifest.csv --out $(SC_DATA)-controls
	bin/train-statcell --data $(SC_DATA)-controls/manifest.csv --model reference --beta 0.1 $(SC_TRAIN) --out $(SC_RUNS)/reference
	bin/train-statcell --data $(SC_DATA)-controls/manifest.csv --model target --beta 0.1 $(SC_TRAIN) --reference-run $(SC_RUNS)/reference --out $(SC_RUNS)/target
	bin/generate-cells $(SC_RUNS)/reference -n 8
	bin/impute-structures $(SC_RUNS)/reference $(SC_RUNS)/target --cell $$(sed -n 2p $(SC_DATA)-controls/manifest.csv | cut -d, -f1) -n 3
	bin/latent-walk $(SC_RUNS)/reference --dims top:4
	bin/latent-stats $(SC_RUNS)/reference
	bin/coupling $(SC_RUNS)/reference $(SC_RUNS)/target --data $(SC_DATA)-controls/manifest.csv
	test -d $(SC_DATA)-treated || bin/make-synthetic-data --out $(SC_DATA)-treated --format allencell --families 6 --cells 40 --size 32 --seed 1 --treatment rounding
	test -d $(SC_DATA)-vehicle || bin/make-synthetic-data --out $(SC_DATA)-vehicle --format allencell --families 6 --cells 40 --size 32 --seed 2 --treatment vehicle
	bin/perturbation-embed $(SC_RUNS)/reference $(SC_RUNS)/target --treated $(SC_DATA)-treated/manifest.csv --untreated $(SC_DATA)-vehicle/manifest.csv --permutations 200
	bin/beta-sweep --data $(SC_DATA)/manifest.csv --betas 0.1:0.9:3 --dims 2 --preset demo --epochs 20 --batch-size 16 --eval-samples 2 --out $(SC_RUNS)/beta_sweep
	@echo "Statistical Cell demo outputs under $(SC_RUNS): generated/, latent_walk/, latent_stats/, target/imputed/, target/coupling/, reference/perturbation/, beta_sweep/"

test: $(STAMP)
	$(PY) -m pytest -q --durations=15

science: $(STAMP)
	$(PY) -m pytest -q -m science --durations=0 -s

bench: $(STAMP)
	$(PY) bench/pipeline.py --normalize max
	@for b in bench/train_*.py; do [ -f $$b ] && $(PY) $$b || true; done

# Every model × float32/mixed_float16/mixed_bfloat16 × XLA off/on on the visible GPUs, plus
# MirroredStrategy over all of them: one table, bench-gpu.json (under 8 minutes; one line without a GPU).
bench-gpu: $(STAMP)
	$(PY) bench/gpu.py --json bench-gpu.json

clean-demo:
	rm -rf $(DEMO_DATA) $(DEMO_RUN)
