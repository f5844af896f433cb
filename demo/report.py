"""The demo's report: the paper's Tables 3-6 filled with the reduced profile's measured errors.

Every number comes from the posteriors that `vgg-eval run` saved (evaluation.posteriors) and is
combined with evaluation's own functions, exactly as Sec. 4 does: multi-scale = posteriors
averaged over the test scales Q (Sec. 4.2), multi-crop & dense = the two protocols' posteriors
averaged (Sec. 4.3), ensemble = the models' posteriors averaged (Sec. 4.4). Beside each row
stands the paper's figure for the analogous full-size row (ILSVRC-2012 val), where it has one:
the two are different data and networks, shown only to read the trends side by side.

Written to the demo's out dir: report.md, results.csv (one row per model x protocol),
curves_<config>_<regime>.png (loss and validation top-1 per training stage).
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import replace
from pathlib import Path

from evaluation import posteriors as post
from evaluation.metrics import topk_error
from evaluation.scales import format_test_scales
from prototxt_gen import table

from .curves import read_log, write_png
from .stages import EVAL_ENV, format_seconds, write_text

DATASET = "Fashion-MNIST test"
FASHION_MNIST_TRAIN = 60_000
LABEL = "mini profile on Fashion-MNIST"
# The paper's figures (PAPER.md, Tables 3-6) for rows with a full-size analogue: (top-1, top-5).
PAPER_TABLE4 = {("D", "256"): (26.6, 8.6), ("D", "384"): (26.5, 8.6), ("D", "[256;512]"): (24.8, 7.5)}
PAPER_TABLE5 = {("D", post.DENSE): (24.8, 7.5), ("D", post.MULTICROP): (24.6, 7.5), ("D", post.COMBINED): (24.4, 7.2)}
CSV_COLUMNS = ("profile", "dataset", "table", "model", "train_S", "test_Q", "protocol", "images",
               "top1_error_pct", "top5_error_pct", "paper_train_S", "paper_test_Q", "paper_top1_error_pct",
               "paper_top5_error_pct")


def _label(regime: table.Regime) -> str:
    lo, hi = regime.train_scale
    return str(lo) if lo == hi else f"[{lo};{hi}]"


def paper_scale(label: str) -> str:
    """The paper's training S of the regime at the same place in the chain (32 -> 256, ...)."""
    pairs = zip(table.regimes(table.MINI), table.regimes(table.PAPER))
    return next((_label(paper) for mini, paper in pairs if _label(mini) == label), "")


def paper_q(label: str, scales) -> str:
    """The paper's test Q set matching the mini one: the single Q, or the three of Sec. 4.2."""
    from evaluation.scales import parse_train_scale

    paper_label = paper_scale(label)
    if not paper_label:
        return ""
    mini, paper = (parse_train_scale(s.strip("[]").replace(";", "-")) for s in (label, paper_label))
    if tuple(sorted(scales)) == (mini.test_scale,):
        return format_test_scales([paper.test_scale])
    return format_test_scales(paper.multi_test_scales()) if len(scales) > 1 else ""


def paper_table3(model: str, train_s: str) -> tuple[float, float] | None:
    for s, _, top1, top5 in table.TABLE3.get(model, []):
        if s == train_s:
            return top1, top5
    return None


class Row:
    def __init__(self, table_no: int, result: post.Posteriors, model: str, train_s: str, method: str,
                 paper: tuple[float, float] | None, note: str = ""):
        self.table = table_no
        self.result = result
        self.model, self.train_s, self.method = model, train_s, method
        self.paper = paper
        self.note = note

    @property
    def top1(self) -> float:
        return topk_error(self.result.probs, self.result.labels, 1)

    @property
    def top5(self) -> float:
        return topk_error(self.result.probs, self.result.labels, 5)

    @property
    def test_q(self) -> str:
        return format_test_scales(self.result.scales)

    def csv(self) -> dict:
        return {"profile": table.MINI.name, "dataset": DATASET, "table": self.table, "model": self.model,
                "train_S": self.train_s, "test_Q": self.test_q, "protocol": self.method,
                "images": self.result.num_scored, "top1_error_pct": f"{self.top1:.2f}",
                "top5_error_pct": f"{self.top5:.2f}",
                "paper_train_S": paper_scale(self.train_s) if self.train_s else "",
                "paper_test_Q": paper_q(self.train_s, self.result.scales) if self.train_s else "",
                "paper_top1_error_pct": self.paper[0] if self.paper else "",
                "paper_top5_error_pct": self.paper[1] if self.paper else ""}


def restrict(run: post.Posteriors, images) -> post.Posteriors:
    """The run's posteriors of `images` only (to compare protocols on the same images)."""
    index = {image: i for i, image in enumerate(run.images)}
    keep = [index[image] for image in images if image in index]
    return replace(run, images=tuple(run.images[i] for i in keep), labels=run.labels[keep],
                   probs=run.probs[keep], skipped=())


def load_runs(eval_dir: Path) -> list[post.Posteriors]:
    return [post.load(path) for path in sorted(eval_dir.glob("*/*/posteriors/*.npz"))]


def build_rows(demo, runs: list[post.Posteriors]) -> list[Row]:
    """Tables 3-6 of the stages the demo trained, in the paper's order."""
    by_key: dict[tuple[str, str, str], list[post.Posteriors]] = {}
    for run in runs:
        by_key.setdefault((run.model, run.train_scale, run.protocol), []).append(run)
    rows: list[Row] = []
    multi: dict[tuple[str, str, str], post.Posteriors] = {}
    stages = []
    for stage in demo.plan.train:
        lo, hi = demo.regimes[stage.regime].train_scale
        train_s = str(lo) if lo == hi else f"[{lo};{hi}]"
        stages.append((stage, train_s))
        single_q = demo.test_scales(stage, multi=False)
        for run in by_key.get((stage.config, train_s, post.DENSE), []):
            if tuple(run.scales) == tuple(single_q):
                rows.append(Row(3, run, stage.config, train_s, post.DENSE, paper_table3(stage.config, paper_scale(train_s))))
        for protocol in post.PROTOCOLS:
            parts = by_key.get((stage.config, train_s, protocol), [])
            if len(parts) > 1:
                multi[(stage.config, train_s, protocol)] = post.multi_scale(parts)
    for stage, train_s in stages:
        if (stage.config, train_s, post.DENSE) in multi:
            rows.append(Row(4, multi[(stage.config, train_s, post.DENSE)], stage.config, train_s, post.DENSE,
                            PAPER_TABLE4.get((stage.config, paper_scale(train_s)))))
    finals = []
    for config in ("A", "D"):
        stage = demo.plan.final(config)
        train_s = next(s for st, s in stages if st == stage)
        dense, crops = multi.get((config, train_s, post.DENSE)), multi.get((config, train_s, post.MULTICROP))
        if dense is None or crops is None:
            continue
        finals.append((config, train_s, dense, crops))
        subset = restrict(dense, crops.images)
        combined = post.combine_protocols(subset, crops)
        paper = PAPER_TABLE5 if (config, paper_scale(train_s)) == ("D", "[256;512]") else {}
        rows.append(Row(5, dense, config, train_s, post.DENSE, paper.get((config, post.DENSE))))
        if subset.num_scored != dense.num_scored:
            rows.append(Row(5, subset, config, train_s, post.DENSE, None,
                            note=f"the {subset.num_scored} images multi-crop scored"))
        rows.append(Row(5, crops, config, train_s, post.MULTICROP, paper.get((config, post.MULTICROP))))
        rows.append(Row(5, combined, config, train_s, post.COMBINED, paper.get((config, post.COMBINED))))
    if len(finals) == 2:
        names = " + ".join(f"{c}/{s}" for c, s, _, _ in finals)
        dense = post.ensemble([d for _, _, d, _ in finals])
        crops = post.ensemble([c for _, _, _, c in finals])
        combined = post.ensemble([post.combine_protocols(restrict(d, c.images), c) for _, _, d, c in finals])
        rows.append(Row(6, dense, names, "", post.DENSE, None))
        if dense.num_scored != crops.num_scored:
            rows.append(Row(6, restrict(dense, crops.images), names, "", post.DENSE, None,
                            note=f"the {crops.num_scored} images multi-crop scored"))
        rows.append(Row(6, crops, names, "", post.MULTICROP, None))
        rows.append(Row(6, combined, names, "", post.COMBINED, None))
    return rows


# --------------------------------------------------------------------------- markdown

TITLES = {3: "Table 3: ConvNet performance at a single test scale (dense evaluation)",
          4: "Table 4: ConvNet performance at multiple test scales (dense evaluation)",
          5: "Table 5: dense vs multi-crop evaluation (multiple test scales)",
          6: "Table 6: ensemble of the demo's models (multiple test scales)"}


def _err(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}"


def _table(rows: list[Row], number: int) -> list[str]:
    rows = [r for r in rows if r.table == number]
    if not rows:
        return []
    out = [f"### {TITLES[number]} ({LABEL})", ""]
    if number == 6:
        header = ["Combined ConvNet models (mini)", "Evaluation method", "test (Q)", "images"]
    else:
        header = ["ConvNet config. (mini)", "train (S)", "test (Q)", "Evaluation method", "images"]
    header += ["top-1 error (%)", "top-5 error (%)", "paper, full size: S / Q", "paper top-1 / top-5 (%)"]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        method = row.method + (f" ({row.note})" if row.note else "")
        cells = [row.model, method, row.test_q] if number == 6 else [row.model, row.train_s, row.test_q, method]
        cells.append(str(row.result.num_scored))
        cells += [_err(row.top1), _err(row.top5)]
        if row.paper:
            cells += [f"{paper_scale(row.train_s)} / {paper_q(row.train_s, row.result.scales)}",
                      f"{row.paper[0]} / {row.paper[1]}"]
        else:
            cells += ["", "no such row"]
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def _find(rows: list[Row], number: int, model: str, method: str = post.DENSE, note: bool = False) -> Row | None:
    for row in rows:
        if row.table == number and row.model == model and row.method == method and bool(row.note) == note:
            return row
    return None


def verdicts(demo, rows: list[Row]) -> list[str]:
    out = []
    d_s = _label(demo.regimes[demo.plan.final("D").regime])
    a_s = _label(demo.regimes[demo.plan.final("A").regime])
    # every trained D is reported under the target, the chain's final one first
    d_rows = sorted((r for r in rows if r.table == 4 and r.model == "D"), key=lambda r: r.train_s != d_s)
    d_multi = next((r for r in d_rows if r.train_s == d_s), None)
    a_multi = next((r for r in rows if r.table == 4 and r.model == "A" and r.train_s == a_s), None)
    d_single = next((r for r in rows if r.table == 3 and r.model == "D" and r.train_s == d_s), None)
    if d_rows:
        best = min(d_rows, key=lambda r: r.top1)
        met = 100 - best.top1 >= 90
        each = "; ".join(f"trained at S={r.train_s}, Q={r.test_q}: **{100 - r.top1:.2f}%** "
                         f"({r.result.num_scored} test images)" for r in d_rows)
        out.append(f"- D, dense multi-scale evaluation, top-1 accuracy: {each} (target >= 90%: "
                   + (f"met by D trained at S={best.train_s})." if met else "NOT met)."))
    if d_multi and a_multi:
        better = d_multi.top1 < a_multi.top1
        out.append(f"- Deeper is better (Sec. 4.1): D {d_multi.top1:.2f}% vs A {a_multi.top1:.2f}% top-1 error "
                   f"(multi-scale dense): {'D beats A' if better else 'D does NOT beat A'}.")
    if d_multi and d_single:
        better = d_multi.top1 < d_single.top1
        out.append(f"- Multi-scale testing (Sec. 4.2): D {d_single.top1:.2f}% at Q={d_single.test_q} vs "
                   f"{d_multi.top1:.2f}% over Q={d_multi.test_q}: "
                   f"{'multi-scale beats single-scale' if better else 'multi-scale does NOT beat single-scale'}.")
    fixed = [r for r in rows if r.table == 3 and r.model == "D" and r.train_s != d_s]
    if d_single and fixed:
        best = min(fixed, key=lambda r: r.top1)
        better = d_single.top1 < best.top1
        out.append(f"- Scale jittering at training (Sec. 4.1): D {d_s} {d_single.top1:.2f}% vs best fixed S "
                   f"({best.train_s}) {best.top1:.2f}% top-1 error at a single Q: "
                   f"{'jittering helps' if better else 'jittering does NOT help here'}.")
    return out


def _map_sizes(profile: table.Profile) -> tuple[int, int]:
    """Spatial size of the maps conv4 and conv5 work on at the profile's crop."""
    sizes = {layer.name: layer.in_size for layer in table.conv_layers(table.resolve("D"), profile)}
    return sizes["conv4_1"], sizes["conv5_1"]


def _top1_and_count(run: post.Posteriors) -> str:
    return f"{_err(topk_error(run.probs, run.labels, 1))} ({run.num_scored})"


def per_scale(demo, runs: list[post.Posteriors], profile: table.Profile) -> list[str]:
    """Every trained model's top-1 error at each test scale on its own, dense beside multi-crop.

    The multi-scale rows above average these; this table shows where the average loses: dense
    evaluation at a Q other than the crop, not the scale itself (multi-crop at the same Q is fine).
    """
    lines = []
    for stage in demo.plan.train:
        train_s = _label(demo.regimes[stage.regime])
        by_q: dict[str, dict[int, post.Posteriors]] = {post.DENSE: {}, post.MULTICROP: {}}
        for run in runs:
            if (run.model, run.train_scale) == (stage.config, train_s) and run.protocol in by_q \
                    and len(run.scales) == 1:
                by_q[run.protocol][run.scales[0]] = run
        for q in sorted(set(by_q[post.DENSE]) | set(by_q[post.MULTICROP])):
            dense, crops = by_q[post.DENSE].get(q), by_q[post.MULTICROP].get(q)
            cells = [stage.config, train_s, str(q)]
            cells.append(_top1_and_count(dense) if dense else "")
            if crops is not None:
                subset = restrict(dense, crops.images) if dense else None
                cells.append(_err(topk_error(subset.probs, subset.labels, 1)) if subset else "")
                cells.append(_top1_and_count(crops))
            else:
                cells += ["", ""]
            lines.append("| " + " | ".join(cells) + " |")
    if not lines:
        return []
    m4, m5 = _map_sizes(profile)
    return [f"### Each test scale on its own ({LABEL})", "",
            f"Top-1 error (%) of each model at each Q alone (images scored in brackets). At crop {profile.crop}, "
            f"conv4 and conv5 work on {m4}x{m4} and {m5}x{m5} maps, and Caffe's 2x2 pools round up, so a dense "
            f"input of any other size tiles those few cells differently from every training crop; multi-crop "
            f"at the same Q feeds {profile.crop}-px crops and keeps the training geometry.", "",
            "| ConvNet config. (mini) | train (S) | test (Q) | dense | dense, multi-crop's images | multi-crop |",
            "|---|---|---|---|---|---|", *lines, ""]


def _batch_deviation(profile: table.Profile, train_images: int) -> str:
    paper = table.PAPER_RECIPE.batch
    return (f"- Batch {profile.recipe.batch}, not {paper}: the paper's batch makes "
            f"{table.ILSVRC12_TRAIN // paper:,} steps an epoch of ILSVRC-2012's {table.ILSVRC12_TRAIN:,} images, but "
            f"{train_images // paper:,} of these {train_images:,}; batch {profile.recipe.batch} makes "
            f"{train_images // profile.recipe.batch:,} (`table.MINI` says what each gave).")


def _scales_deviation(profile: table.Profile, runs: list[post.Posteriors]) -> str:
    m4, m5 = _map_sizes(profile)
    p4, p5 = _map_sizes(table.PAPER)
    qs = sorted({q for run in runs for q in run.scales})
    tested = f"Every Q here is {qs[0]}-{qs[-1]}. " if qs else ""
    pools = len(table.resolve("D").stacks)
    return (f"- Scales: the crop and the scales are not the paper's / {profile.width_divisor}. {pools} max-pools of "
            f"stride {table.POOL_SIZE} make the nets' stride {table.POOL_SIZE ** pools} px in every profile, so at crop {profile.crop} conv4 "
            f"and conv5 see {m4}x{m4} and {m5}x{m5} maps (the paper's: {p4}x{p4} and {p5}x{p5}): a test scale "
            f"much above the crop would make dense evaluation score windows centred off the object, and even "
            f"a Q a few pixels off the crop changes how the pools tile the image (table above). {tested}"
            f"The jitter range is narrower than the paper's (S up to {profile.jitter[1] / profile.crop:.2f}x "
            f"the crop instead of {table.PAPER.jitter[1] / table.PAPER.crop:.2f}x).")


def _stage_table(demo) -> list[str]:
    out = ["| stage | this run | wall time | log |", "|---|---|---|---|"]
    for rec in demo.runner.records:
        if rec.status == "reused":
            status, seconds = "reused", f"({format_seconds(rec.made_seconds)} when made)"
        else:
            status, seconds = rec.status, format_seconds(rec.seconds)
        out.append(f"| {rec.title} | {status} | {seconds} | {('`' + rec.log + '`') if rec.log else ''} |")
    spans = [rec.span for rec in demo.runner.records if rec.span]
    total = time.monotonic() - demo.started
    ran = sum(rec.status != "reused" for rec in demo.runner.records)
    out += ["", f"**This `make demo`: {format_seconds(total)}** ({ran} of {len(demo.runner.records)} stages ran, "
            "the others reused), from start to this report; evaluation stages run beside the trainings, so "
            "their times overlap."]
    if spans and ran < len(demo.runner.records):
        made = max(end for _, end in spans) - min(start for start, _ in spans)
        out.append(f"The outputs were made between the first stage's start and the last one's end in "
                   f"{format_seconds(made)} (from the stamps in `{os.path.relpath(demo.work, demo.out)}/stamps/`).")
    return out


def _chain(demo) -> list[str]:
    out = []
    records = {rec.key: rec for rec in demo.runner.records}
    for stage in demo.plan.train:
        regime = demo.regimes[stage.regime]
        lo, hi = regime.train_scale
        info = records.get(stage.key).info if stage.key in records else {}
        start = info.get("start") or "random init (Glorot)"
        seen = stage.iterations * demo.plan.images_per_iteration
        top1 = info.get("final_top1")
        out.append(f"1. `caffe train` **{stage.config}** at S={'%d' % lo if lo == hi else f'[{lo}, {hi}]'}: "
                   f"{stage.iterations} iterations x {demo.plan.images_per_iteration} = {seen:,} images "
                   f"({seen / (demo.plan.train_images or FASHION_MNIST_TRAIN):.1f} epochs), lr {regime.base_lr:g} "
                   f"(plateau /10), from `{Path(start).name if info.get('start') else start}`"
                   + (f"; last validation top-1 {100 * top1:.1f}% (centre crop, Q={regime.test_scale}, "
                      f"first {demo._val_images()} test images)" if top1 is not None else ""))
        init_key = f"init_{stage.config}"
        if stage == demo.plan.chain(stage.config)[0] and init_key in records:
            copied = records[init_key].info.get("copied", [])
            out.insert(len(out) - 1, f"1. `vgg-init-from-a` **{stage.config}**: layers copied from trained A: "
                       f"{', '.join(copied)}; the others Glorot-random (Sec. 3.1)")
    ran = {stage.regime for stage in demo.plan.chain("D")}
    skipped = [r.name for r in table.regimes(table.MINI) if r.name not in ran]
    if skipped:
        out.append(f"\nThe table's regime chain is shortened: {', '.join(skipped)} did not run, so each stage "
                   "above starts from the one before it (`demo/plan.py` says why).")
    return out


def markdown(demo, rows: list[Row], runs: list[post.Posteriors], curves: list[tuple[str, Path]], timing: dict,
             load_end) -> str:
    plan, profile = demo.plan, table.MINI
    out = ["# `make demo`: VGG's pipeline on Fashion-MNIST with the reduced profile `mini` "
           "(not the paper's networks)", ""]
    if plan.notes:
        out += [f"> **{note}**" for note in plan.notes] + [""]
    out += [f"Every figure below is the **reduced profile `{profile.name}` on Fashion-MNIST** "
            f"({plan.test_images or 10000:,} test images, 10 classes), measured by this run; the paper's "
            "columns are its full-size ILSVRC-2012 figures for the analogous row, for reading trends only.", ""]
    out += ["## Result", ""] + verdicts(demo, rows) + [""]
    for number in (3, 4, 5, 6):
        out += _table(rows, number)
    out += [f"Multi-crop (5x5 grid x 2 flips = 50 crops per scale, 150 over three scales) scores only the first "
            f"{min(plan.multicrop_images, plan.test_images or 10000)} test images to fit the time budget; its rows, the "
            "combined rows and the dense rows marked with that subset are over those images. "
            "Top-5 error among 10 classes is small by nature.", ""]
    out += per_scale(demo, runs, profile)
    a, d = (table.resolve(c) for c in ("A", "D"))
    out += ["## What ran", "",
            f"Profile `{profile.name}` (prototxt_gen/table.py): Table 1's configurations with every width / "
            f"{profile.width_divisor}, FC {profile.fc_width}, crop {profile.crop}, S = {profile.single_scales[0]}, "
            f"{profile.single_scales[1]} and [{profile.jitter[0]}, {profile.jitter[1]}], {profile.num_classes} classes: "
            f"A {table.param_count(a, profile):,} and D {table.param_count(d, profile):,} parameters. "
            f"Recipe of Sec. 3.1: batch {plan.images_per_iteration} ({plan.net_batch} x iter_size "
            f"{plan.images_per_iteration // plan.net_batch}; the paper's {table.PAPER_RECIPE.batch}), momentum "
            f"{profile.recipe.momentum}, "
            f"weight decay {profile.recipe.weight_decay}, dropout {profile.recipe.dropout}, lr "
            f"{profile.recipe.base_lr} / fine-tuning {profile.recipe.finetune_lr}, divided by 10 on a validation "
            "plateau, random crop, flip and PCA colour shift. Training chain (table.regimes, Sec. 3.1):", ""]
    out += _chain(demo) + [""]
    out += ["Deviations, all forced by size or time:", "",
            _scales_deviation(profile, runs),
            "- Weights are Glorot-initialised: the paper's N(0, 0.01) does not train at width / 8 "
            "(table.gaussian_gain); Sec. 3.1 notes that Glorot's init works too.",
            _batch_deviation(profile, demo.plan.train_images or FASHION_MNIST_TRAIN),
            f"- Caffe validates during training on the first {demo._val_images()} test images (the plateau "
            "schedule reads them), in LMDBs of their own so that every pass reads the same images: "
            "Fashion-MNIST has no separate validation set, and the paper too reports on the ILSVRC val set.",
            "- The stages are far shorter than the paper's 74 epochs (`demo/plan.py`).", ""]
    out += ["## Training curves", ""]
    for title, path in curves:
        out += [f"![{title}]({os.path.relpath(path, demo.out)})", ""]
    out += ["## Time", "",
            f"{os.cpu_count()} CPUs; load average (1, 5, 15 min) at the start {_load(demo.load_start)}, at the end "
            f"{_load(load_end)} (other processes on the machine share the cores). Each Caffe process runs "
            f"one BLAS thread (OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}); "
            f"`caffe train` runs an OpenMP thread per core, each evaluation process one "
            f"(OMP_NUM_THREADS={EVAL_ENV['OMP_NUM_THREADS']}), {demo.jobs} at a time.", ""]
    out += _stage_table(demo) + [""]
    if timing:
        out += [f"`caffe time` of each training net (forward and backward, batch {plan.timing_batch}, "
                f"{plan.timing_iterations} iterations, CPU):", "",
                "| config (mini) | parameters | multiply-adds / image | forward ms | backward ms | ms / image (fwd+bwd) |",
                "|---|---|---|---|---|---|"]
        for name, t in timing.items():
            out.append(f"| {name} | {t['parameters']:,} | {t['multiply_adds'] / 1e6:.2f} M | {t['forward_ms']:.1f} "
                       f"| {t['backward_ms']:.1f} | {t['forward_backward_ms'] / t['batch']:.2f} |")
        out.append("")
    out += [f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `make demo` ({plan.name} plan); work files under "
            f"`{os.path.relpath(demo.work, demo.out)}/`; `results.csv` holds every row above.", ""]
    return "\n".join(out)


def _load(load) -> str:
    return ", ".join(f"{x:.2f}" for x in load) if load else "?"


def csv_text(rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.csv())
    return buffer.getvalue()


def write_demo_report(demo, stage_seconds_report: float = 0.0) -> list[Path]:
    out = demo.out
    runs = load_runs(demo.work / "eval")
    rows = build_rows(demo, runs)
    curves = []
    for stage in demo.plan.train:
        log = demo.runner.log_path(stage.key)
        if not log.exists():
            continue
        regime = demo.regimes[stage.regime]
        lo, hi = regime.train_scale
        title = (f"{stage.config} ({LABEL}), S={lo if lo == hi else f'[{lo},{hi}]'}, lr {regime.base_lr:g}: "
                 f"training loss and validation top-1 vs iteration")
        curves.append((title, write_png(read_log(log), title, out / f"curves_{stage.config}_{stage.regime}.png",
                                        stage.iterations)))
    timing_path = demo.work / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    paths = [write_text(out / "results.csv", csv_text(rows)),
             write_text(out / "report.md", markdown(demo, rows, runs, curves, timing, os.getloadavg()))]
    return paths + [path for _, path in curves]
