"""What `make demo` runs: the stages of Sec. 3.1-4 on the reduced profile, and how long each is.

The architecture, recipe and scales come from prototxt_gen.table (profile MINI: widths / 8,
FC 256, crop 28 = 224 / 8, S = 28 and 32, S in [28, 32], batch 64, 10 classes; see its comment).
What is the demo's own choice lives here: how many iterations each training stage runs, how
many validation images Caffe tests on while it trains, and how many test images the
multi-crop protocol scores. `FULL` is `make demo`; `QUICK` is the shortened run of the tests
and of `make demo-quick` (a few iterations on a subset: it checks the plumbing, not accuracy).

The training chain follows table.regimes(): A at the first fixed S from random init; D from
A's layers (vgg-init-from-a) at the first fixed S; then each later regime of the plan
fine-tunes the previous one's final weights at the fine-tuning learning rate (the table's
S=32, then S in [28, 32], as the paper's S=384 then [256, 512]; FULL leaves S=32 out). Stage
lengths are counted in SGD iterations of the profile's batch (64 images; the paper's is 256).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from prototxt_gen import table

PROFILE = table.MINI


@dataclass(frozen=True)
class TrainStage:
    """One `caffe train` run: a config at a regime of table.regimes(PROFILE)."""
    config: str
    regime: str
    iterations: int
    evaluate: str = "multi"  # dense evaluation at the multi-scale Q set ("multi") or the single Q ("single")

    @property
    def key(self) -> str:
        return f"train_{self.config}_{self.regime}"


@dataclass(frozen=True)
class Plan:
    name: str
    train_images: int | None  # None: all 60,000 Fashion-MNIST training images
    test_images: int | None  # None: all 10,000 test images (the reported figures)
    train: tuple[TrainStage, ...]
    val_images: int  # validation images of `caffe train`'s test passes: the first of the test set, in LMDBs of their own
    test_interval: int
    snapshot: int
    display: int
    net_batch: int  # the prototxt batch; iter_size makes up the profile's batch
    iter_size: int | None  # None: the generator's (profile batch / net_batch); QUICK overrides it to stay small
    eval_batch: int  # vgg-eval --batch-size (crops' worth of pixels per forward pass)
    multicrop_images: int  # multi-crop (150 crops per image) scores the first N test images
    timing_batch: int
    timing_iterations: int
    jobs: int = 2  # evaluation processes at a time (each single-threaded)
    notes: tuple[str, ...] = field(default=())

    @property
    def images_per_iteration(self) -> int:
        return self.net_batch * (self.iter_size or PROFILE.recipe.batch // self.net_batch)

    def stage(self, config: str, regime: str) -> TrainStage:
        return next(s for s in self.train if s.config == config and s.regime == regime)

    def chain(self, config: str) -> list[TrainStage]:
        return [s for s in self.train if s.config == config]

    def final(self, config: str) -> TrainStage:
        return self.chain(config)[-1]


def _regimes() -> list[str]:
    return [r.name for r in table.regimes(PROFILE)]


FIRST, SECOND, JITTERED = _regimes()

FULL = Plan(
    name="full",
    train_images=None,
    test_images=None,
    # The chain is shortened: the table's S=32 stage (the paper's S=384 one) is left out and the
    # jittered net is fine-tuned from the S=28 one; in this budget a short S=32 stage only moved
    # the net away from the whole-image scale Q=28 where it is tested best (demo/README.md).
    train=(TrainStage("A", FIRST, 1000),
           TrainStage("D", FIRST, 16000),
           TrainStage("D", JITTERED, 800)),
    val_images=2000,
    test_interval=PROFILE.schedule.test_interval,
    snapshot=PROFILE.schedule.snapshot,
    display=PROFILE.schedule.display,
    net_batch=PROFILE.recipe.batch,
    iter_size=None,
    eval_batch=64,
    multicrop_images=300,
    timing_batch=64,
    timing_iterations=5,
)

QUICK = Plan(
    name="quick",
    train_images=600,
    test_images=200,
    train=(TrainStage("A", FIRST, 12),
           TrainStage("D", FIRST, 6, evaluate="single"),
           TrainStage("D", SECOND, 4, evaluate="single"),
           TrainStage("D", JITTERED, 4)),
    val_images=100,  # fewer than the test images, as in FULL
    test_interval=4,
    snapshot=2,  # an intermediate snapshot, so the tests can resume from one
    display=2,
    net_batch=16,
    iter_size=1,
    eval_batch=16,
    multicrop_images=8,
    timing_batch=4,
    timing_iterations=1,
    notes=("shortened run (QUICK): a few iterations of 16 images on a 600/200-image subset; "
           "it checks that every stage hands its outputs on, its errors mean nothing",),
)

PLANS = {p.name: p for p in (FULL, QUICK)}
