"""The paper's result tables (Sec. 4, Tables 3-6) from saved posteriors, as Markdown and CSV.

* Table 3, single test scale: config / train S / test Q / top-1 / top-5, one row per run.
* Table 4, multi-scale: the same columns, posteriors averaged over each run set's scales.
* Table 5, multi-crop vs dense: per model, dense, multi-crop and multi-crop & dense.
* Table 6, ensembles: the models given together, per evaluation method.
Every row also gives the throughput (images scored per second of wall time of all the runs
averaged into it) and how many images were scored and skipped: errors are computed over
the images actually scored.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from . import posteriors as post
from .atomic import write_text
from .metrics import topk_error
from .scales import format_test_scales

TABLES = {
    3: "Table 3: single test scale",
    4: "Table 4: multiple test scales",
    5: "Table 5: dense vs multi-crop evaluation",
    6: "Table 6: ensembles of models",
}
CSV_COLUMNS = ("table", "models", "train_S", "test_Q", "method", "top1_error_pct", "top5_error_pct",
               "images_scored", "images_skipped", "images_per_s")


@dataclass(frozen=True)
class Row:
    table: int
    result: post.Posteriors

    @property
    def method(self) -> str:
        return self.result.protocol + ("" if self.result.flip else " (no flip)")

    def values(self) -> dict:
        r = self.result
        return {
            "table": self.table, "models": r.model, "train_S": r.train_scale,
            "test_Q": format_test_scales(r.scales), "method": self.method,
            "top1_error_pct": topk_error(r.probs, r.labels, 1), "top5_error_pct": topk_error(r.probs, r.labels, 5),
            "images_scored": r.num_scored, "images_skipped": len(r.skipped), "images_per_s": r.images_per_second,
        }


def build_rows(runs: Sequence[post.Posteriors]) -> list[Row]:
    """All the rows the runs support: each run is one (model, protocol, test scale)."""
    groups: dict[tuple, list[post.Posteriors]] = defaultdict(list)
    for run in runs:
        if len(run.scales) != 1 or run.protocol not in post.PROTOCOLS:
            raise post.PosteriorsError(
                f"{run.key}: the report is built from single-scale dense or multi-crop runs, "
                f"got {run.protocol} at Q={format_test_scales(run.scales)}")
        groups[(run.key, run.protocol, run.flip)].append(run)
    rows: list[Row] = []
    for key in sorted(groups):
        for run in sorted(groups[key], key=lambda r: r.scales):
            rows.append(Row(3, run))
    per_method: dict[tuple, post.Posteriors] = {}
    for key in sorted(groups):
        scales = [q for run in groups[key] for q in run.scales]
        if len(set(scales)) != len(scales):
            raise post.PosteriorsError(f"{key[0]} {key[1]}: two runs at the same test scale {sorted(scales)}")
        per_method[key] = post.multi_scale(groups[key])
        if len(groups[key]) > 1:
            rows.append(Row(4, per_method[key]))
    # Table 5 and 6 use the paper's protocol: flipped images included.
    models = sorted({key for key, _, flip in per_method if flip})
    per_model: dict[str, dict[str, post.Posteriors]] = {}
    for model in models:
        methods = {p: per_method[(model, p, True)] for p in post.PROTOCOLS if (model, p, True) in per_method}
        if len(methods) == 2:
            methods[post.COMBINED] = post.combine_protocols(methods[post.DENSE], methods[post.MULTICROP])
            rows.extend(Row(5, methods[m]) for m in (post.DENSE, post.MULTICROP, post.COMBINED))
        per_model[model] = methods
    if len(per_model) > 1:
        for method in (post.DENSE, post.MULTICROP, post.COMBINED):
            if all(method in methods for methods in per_model.values()):
                rows.append(Row(6, post.ensemble([methods[method] for methods in per_model.values()])))
    return rows


def _fmt(value, digits: int = 1) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.{digits}f}"
    return str(value)


def markdown(rows: Sequence[Row], title: str = "Evaluation") -> str:
    out = [f"# {title}", ""]
    scored = sorted({(r.result.key, r.result.num_scored, len(r.result.skipped)) for r in rows if r.table == 3})
    out.append("Errors (%) are computed over the images actually scored; skipped images "
               "(unreadable, or not scored by every part of an average) are not counted.")
    for key, n, skipped in dict.fromkeys(scored):
        out.append(f"- {key}: {n} images scored, {skipped} skipped")
    out.append("")
    for table, caption in TABLES.items():
        table_rows = [r for r in rows if r.table == table]
        if not table_rows:
            continue
        out += [f"## {caption}", ""]
        if table == 6:
            header = ["Combined ConvNet models", "Evaluation method", "test (Q)"]
        else:
            header = ["ConvNet config.", "train (S)", "test (Q)", "Evaluation method"]
        header += ["top-1 val. error (%)", "top-5 val. error (%)", "images/s", "scored", "skipped"]
        out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in table_rows:
            v = row.values()
            cells = [v["models"], v["method"], v["test_Q"]] if table == 6 else \
                [v["models"], v["train_S"] or "?", v["test_Q"], v["method"]]
            cells += [_fmt(v["top1_error_pct"]), _fmt(v["top5_error_pct"]), _fmt(v["images_per_s"], 2),
                      str(v["images_scored"]), str(v["images_skipped"])]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out += ["Soft-max placement: dense evaluation averages the class score map (fc8) spatially and "
            "then applies soft-max; the posteriors of an image and its mirror image, of test scales, "
            "of multi-crop and dense, and of models are averaged after soft-max (Sec. 3.2, 4.2-4.4).",
            "images/s: images scored per second of wall time, summed over every run averaged into the row.", ""]
    return "\n".join(out)


def csv_text(rows: Sequence[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        v = row.values()
        writer.writerow({k: (f"{x:.4f}" if isinstance(x, float) else x) for k, x in v.items()})
    return buffer.getvalue()


def write_report(runs: Iterable[post.Posteriors], out_dir: str | Path, title: str = "Evaluation") -> list[Row]:
    """<out_dir>/report.md and <out_dir>/results.csv; returns the rows."""
    out_dir = Path(out_dir)
    rows = build_rows(list(runs))
    write_text(out_dir / "results.csv", csv_text(rows))
    write_text(out_dir / "report.md", markdown(rows, title))
    return rows
