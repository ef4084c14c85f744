# make test  : create .venv from requirements-test.txt when missing or stale, run the whole test suite
# make train : create .venv from requirements.txt, then a short real Entropy-SGD run on Fashion-MNIST
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: test train clean-venv

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

test: $(VENV)/.installed-test
	$(PY) -m pytest

clean-venv:
	rm -rf $(VENV)
