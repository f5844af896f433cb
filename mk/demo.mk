# The demo (demo/, issue 7): the paper's pipeline end to end on Fashion-MNIST with the reduced
# profile `mini`, on the CPU: import -> LMDBs -> nets -> caffe train A -> D from A -> caffe train D
# (S=28, then S in [28, 32]; demo/plan.py) -> dense / multi-crop / multi-scale evaluation -> demo/report.md.
#   make demo [FORCE=1]          the reported run; work files under demo/work/ (git-ignored)
#   make demo-quick [FORCE=1]    a few iterations on a subset (plumbing check, report in demo/work/quick/)
DEMO_FLAGS = $(if $(filter-out 0,$(FORCE)),--force) $(if $(FASHION_MNIST_SOURCE),--source "$(FASHION_MNIST_SOURCE)")

.PHONY: demo demo-quick

demo: $(SETUP_STAMP) ## the paper's pipeline on Fashion-MNIST (reduced profile, CPU): demo/report.md [FORCE=1 redoes]
	@$(PY) -m demo $(DEMO_FLAGS)

demo-quick: $(SETUP_STAMP) ## shortened demo (few iterations, 600/200 images) through every stage [FORCE=1]
	@$(PY) -m demo --plan quick $(DEMO_FLAGS)
