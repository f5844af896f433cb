"""bench/results.md from the results of one `make bench` run (bench/run.py): the tables of issue 8
and its targets, each marked met or not from this run's numbers."""
from __future__ import annotations

DATA_LAYER_TARGET = 4.0  # the data layer must deliver 4x the images/s of D's training step
CONV_TARGET = 0.80  # conv layers at 80% of the GEMM limit
# A 1-minute load average from this up at the start, or from this plus the cores at the end (the
# run's own threads keep the load near the core count), means other work shared the cores.
SHARED_LOAD = 1.0


def _f(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _yes(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def per_image(row: dict, key: str) -> float:
    return row[key] / row["batch"]


def targets(results: dict) -> list[tuple[str, str, bool]]:
    """(target, what this run measured, met) for each of issue 8's targets that this run measured."""
    out = []
    nets = results.get("nets") or []
    if nets:
        behind = [r["config"] for r in nets if r["caffe_fwd_bwd_ms"] > r["torch_fwd_bwd_ms"]]
        ratios = ", ".join(f"{r['config']} {r['torch_fwd_bwd_ms'] / r['caffe_fwd_bwd_ms']:.2f}x" for r in nets)
        out.append(("Forward+backward: Caffe at least as fast as PyTorch, every config",
                    f"PyTorch time / Caffe time: {ratios}" + (f"; behind: {', '.join(behind)}" if behind else ""),
                    not behind))
        behind = [r["config"] for r in nets if r["caffe_fwd_ms"] > r["torch_infer_ms"]]
        ratios = ", ".join(f"{r['config']} {r['torch_infer_ms'] / r['caffe_fwd_ms']:.2f}x" for r in nets)
        out.append(("Inference forward: Caffe at least as fast as PyTorch (eval, inference_mode), every config",
                    f"PyTorch time / Caffe time: {ratios}" + (f"; behind: {', '.join(behind)}" if behind else ""),
                    not behind))
    profile, alone = results.get("profile"), results.get("conv_alone")
    if profile or alone:
        def reach(rows, together, how):
            below = [r["layer"] for r in rows if (r["fraction_of_gemm"] or 0) < CONV_TARGET]
            text = (f"{how}: all conv layers together {_pct(together)}; {len(rows) - len(below)} of {len(rows)} "
                    "layers reach it" + (f" (below: {', '.join(below)})" if below else ""))
            return text, not below

        measured, verdicts = [], []
        if alone:  # decides where present: the layer and the limit measured alike, in the same minute
            text, met = reach(alone["layers"], alone["conv_forward_fraction"],
                              f"each layer alone, best of {alone['rounds']} rounds alternating with the SGEMM")
            measured.append(text)
            verdicts.append(met)
        if profile:
            text, met = reach(profile["conv"], profile["summary"]["conv_forward_fraction"],
                              f"in `caffe time` of the whole net ({profile['iterations']} passes, mean)")
            measured.append(text)
            verdicts.append(met)
        out.append((f"Conv layers at >= {CONV_TARGET:.0%} of the GEMM limit (D, forward)", "; ".join(measured),
                    verdicts[0]))
    d_rows = [r for r in nets if r["config"] == "D"]
    if "data_layer_ips_per_core" in results and d_rows:
        d = d_rows[0]
        step_ips = d["batch"] / (d["caffe_fwd_bwd_ms"] / 1e3)
        layer = results["data_layer_ips_per_core"]
        out.append((f"Data layer with jitter >= {DATA_LAYER_TARGET:g}x the images/s of D's training step",
                    f"{layer:.1f} images/s on one core vs D's Caffe training step {step_ips:.2f} images/s "
                    f"on all cores: {layer / step_ips:.0f}x",
                    layer >= DATA_LAYER_TARGET * step_ips))
    return out


def markdown(results: dict) -> str:
    m = results["machine"]
    v = results.get("versions", {})
    settings = results.get("settings", {})
    lines = ["# Benchmarks (`make bench`)", "",
             "Every number below was measured in one run of `make bench` on the machine named here; "
             "regenerate with `make bench`, never edit.", "",
             f"- Machine: **{m['summary']}**, {m.get('memory_gib')} GiB, {m.get('os')}, kernel {m.get('kernel')}; "
             f"load average (1, 5, 15 min) at start {m.get('load_average_at_start')}, "
             f"at end {m.get('load_average_at_end')}",
             f"- Caffe: {v.get('caffe')}", f"- BLAS: {v.get('blas')}; {v.get('openblas_kernels', 'kernels not recorded')}",
             f"- PyTorch {v.get('torch')}, numpy {v.get('numpy')}, opencv-python {v.get('opencv_python')}, "
             f"Python {v.get('python')}",
             f"- Run: {results.get('started')}, {results.get('seconds')} s in all", ""]
    start, end = m.get("load_average_at_start"), m.get("load_average_at_end")
    loads = [x[0] for x in (start, end) if x]
    if (start and start[0] >= SHARED_LOAD) or (end and end[0] >= SHARED_LOAD + m["cores"]):
        lines += [f"**The machine was shared during this run** (1-minute load average up to {max(loads):.1f} "
                  f"on {m['cores']} cores): other processes took CPU time in varying amounts, so every figure "
                  "here is lower than this machine's, Caffe-against-PyTorch ratios are noisy, and a layer can "
                  "appear above the GEMM limit (measured at a quieter moment). Rerun on an idle machine to "
                  "judge the targets.", ""]

    nets = results.get("nets") or []
    if nets:
        batch = nets[0]["batch"]
        iters = sorted({(r["iterations"]) for r in nets}, reverse=True)
        by_iters = "; ".join(f"{n}: {', '.join(r['config'] for r in nets if r['iterations'] == n)}" for n in iters)
        lines += ["## 1. Training step and inference, 224x224, batch " + str(batch), "",
                  f"Milliseconds **per image** (batch {batch} / {batch}), on {m['summary']}. Caffe: `caffe time` "
                  "(prototxt_gen.timing) of the training net with an Input layer (dropout and loss included), "
                  f"OpenBLAS with {results.get('gemm', {}).get('blas_threads', '?')} threads. PyTorch "
                  f"{v.get('torch')}: the same layers as plain torch.nn (bench/torch_vgg.py), "
                  f"{nets[0]['torch_threads']} intra-op threads, NCHW; forward/backward of a training step "
                  "(train mode, autograd) and a separate inference forward (eval, `torch.inference_mode`). "
                  f"Timed passes after one warm-up pass: {by_iters}. Ratio = PyTorch time / Caffe time "
                  "(above 1: Caffe faster).", "",
                  "| config | GMAC | Caffe fwd | Caffe bwd | Caffe fwd+bwd | PyTorch fwd | PyTorch bwd "
                  "| PyTorch fwd+bwd | PyTorch inference | fwd+bwd ratio | inference ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in nets:
            lines.append(
                f"| {r['config']} | {r['multiply_adds'] / 1e9:.2f} | {_f(per_image(r, 'caffe_fwd_ms'))} "
                f"| {_f(per_image(r, 'caffe_bwd_ms'))} | {_f(per_image(r, 'caffe_fwd_bwd_ms'))} "
                f"| {_f(per_image(r, 'torch_fwd_ms'))} | {_f(per_image(r, 'torch_bwd_ms'))} "
                f"| {_f(per_image(r, 'torch_fwd_bwd_ms'))} | {_f(per_image(r, 'torch_infer_ms'))} "
                f"| {r['torch_fwd_bwd_ms'] / r['caffe_fwd_bwd_ms']:.2f} "
                f"| {r['torch_infer_ms'] / r['caffe_fwd_ms']:.2f} |")
        lines.append("")

    if "gemm_gflops" in results:
        g = results.get("gemm", {})
        sizes = ", ".join(f"{n}: {gf}" for n, gf in g.get("per_size", {}).items())
        lines += ["## 2. The machine's limit", "",
                  f"Single-precision GEMM through the library Caffe links ({g.get('blas')}, found with `ldd` "
                  f"of libcaffe.so), `cblas_sgemm` on square matrices, {g.get('blas_threads')} threads "
                  f"(OpenBLAS's default, all cores, as `caffe` runs), best of {g.get('repeats')}: "
                  f"**{results['gemm_gflops']:.1f} GFLOP/s** (per size n: {sizes}).", ""]
        if nets and "caffe_fwd_fraction" in nets[0]:
            lines += ["Achieved GFLOP/s per config: forward = 2 x the multiply-adds of Table 1's layers "
                      "(prototxt_gen.table); forward+backward = 2 x (3 x multiply-adds - conv1_1's, whose "
                      "input needs no gradient). Patch 0013 computes VGG's 3x3 layers but conv1_1 with Winograd's "
                      "F(2x2, 3x3), 16 multiply-adds where these counts have 36, and patch 0016 B-5x5's 5x5 "
                      "layers with F(2x2, 5x5), 36 where they have 100 (0019 their input gradients too): "
                      "the figures are the direct "
                      "convolution's work per second (as Winograd kernels are usually reported), which can "
                      "exceed the GEMM limit.", "",
                      "| config | Caffe fwd GFLOP/s | of limit | Caffe fwd+bwd GFLOP/s | of limit "
                      "| PyTorch inference GFLOP/s | PyTorch fwd+bwd GFLOP/s | of limit |",
                      "|---|---|---|---|---|---|---|---|"]
            for r in nets:
                lines.append(f"| {r['config']} | {r['caffe_fwd_gflops']:.1f} | {_pct(r['caffe_fwd_fraction'])} "
                             f"| {r['caffe_fwd_bwd_gflops']:.1f} | {_pct(r['caffe_fwd_bwd_fraction'])} "
                             f"| {r['torch_infer_gflops']:.1f} | {r['torch_fwd_bwd_gflops']:.1f} "
                             f"| {_pct(r['torch_fwd_bwd_fraction'])} |")
            lines.append("")
    profile = results.get("profile")
    if profile:
        s = profile["summary"]
        lines += [f"### Where Caffe's forward time goes: config {s['config']}, batch {s['batch']}", "",
                  f"`caffe time` per layer ({profile['iterations']} passes), ms per batch. Forward: conv "
                  f"{_f(s['conv_forward_ms'])}, fc {_f(s['fc_forward_ms'])}, other layers "
                  f"{_f(s['other_forward_ms'])}; backward: conv {_f(s['conv_backward_ms'])}, fc "
                  f"{_f(s['fc_backward_ms'])}, other {_f(s['other_backward_ms'])}. "
                  f"All convs together: {_f(s['conv_forward_gflops'])} GFLOP/s = "
                  f"{_pct(s['conv_forward_fraction'])} of the limit. 'GEMM alone' is the layer's forward "
                  "GEMMs (M = out channels, N = H x W, K = in channels x k x k) the way stock BVLC Caffe "
                  "issues them: one call per image (BaseConvolutionLayer::forward_cpu_gemm), each on all "
                  "cores, through the same BLAS. It is a reference, not a part of the measured layer: "
                  "patch 0010 convolves the batch's images in parallel instead, one core each with "
                  "single-threaded BLAS (layers above 2^24 multiply-adds), so 'not GEMM' (forward minus GEMM "
                  "alone) is negative where that beats the stock sequence. 'im2col' is Caffe's own "
                  "im2col_cpu (called through ctypes from libcaffe.so) for the batch on one thread, as the "
                  "stock layer runs it. Patch 0013's Winograd layers (3x3, at least 16 channels, 8x8 "
                  "pixels) multiply 2.25x less than the GEMM (patch 0018 puts several 14x14 or 28x28 "
                  "images in one block): their GFLOP/s counts the direct work. "
                  "'One GEMM for the batch' is the "
                  "same work as a single call with N = batch x H x W (what batching im2col would issue; "
                  "timed only where that column buffer stays under 256 MB).", "",
                  "| layer | M x N x K | Caffe fwd ms | GFLOP/s | of limit | layer alone ms | alone: of limit "
                  "| GEMM alone ms | GEMM alone GFLOP/s | not GEMM ms | im2col ms | one GEMM for the batch ms "
                  "| Caffe bwd ms |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        alone = results.get("conv_alone")
        if alone:
            rounds = ", ".join(f"{g:.1f}" for g in alone["gemm_gflops_rounds"])
            lines[-2:-2] = [
                f"'Layer alone' (bench/conv_alone.py): each conv layer's forward on its own (pycaffe "
                f"`Net._forward(i, i)`, batch {alone['batch']}), {alone['calls']} calls per round, {alone['rounds']} "
                f"rounds, each round ending with one {alone['gemm_size']}^3 SGEMM; the layer's best run against "
                f"the best SGEMM of the same rounds, **{alone['gemm_gflops']:.1f} GFLOP/s** (per round: {rounds}). "
                "Both sides are the best of their runs, taken in the same minute; the `caffe time` columns are "
                "means of the whole net's passes against the limit measured minutes earlier. All convs "
                f"together, alone: {_pct(alone['conv_forward_fraction'])} of that limit.", ""]
        alone_rows = {row["layer"]: row for row in (alone or {}).get("layers", [])}
        shapes = {row["layer"]: row for row in results.get("gemm_conv", [])}
        for r in profile["conv"]:
            shape = shapes.get(r["layer"])
            mnk = f"{shape['m']} x {shape['n']} x {shape['k']}" if shape else "-"
            by_itself = alone_rows.get(r["layer"], {})
            lines.append(f"| {r['layer']} | {mnk} | {_f(r['forward_ms'])} | {_f(r.get('gflops'))} "
                         f"| {_pct(r.get('fraction_of_gemm'))} | {_f(by_itself.get('forward_ms'))} "
                         f"| {_pct(by_itself.get('fraction_of_gemm'))} | {_f(r.get('gemm_alone_ms'))} "
                         f"| {_f(r.get('gemm_alone_gflops'))} | {_f(r.get('overhead_ms'))} "
                         f"| {_f(r.get('im2col_ms'))} | {_f(r.get('batched_gemm_ms'))} | {_f(r.get('backward_ms'))} |")
        lines.append("")

    if "data_prep" in results or "data_layer_ips_per_core" in results:
        lines += ["## 3. Data", ""]
        d = results.get("data_prep")
        if d:
            main = ("scales", "convert_imageset_ips", "ours_ips", "ratio")
            extra = [k for k in d["rows"][0] if k not in main]
            lines += [f"vgg-data against Caffe's `convert_imageset` on the same images "
                      f"(bench/data_prep_bench.py, data prep's benchmark): {d.get('setup')}", "",
                      "| scales S | convert_imageset images/s | vgg-data images/s | vgg-data / convert_imageset |"
                      + "".join(f" {k.replace('_', ' ')} |" for k in extra),
                      "|---|---|---|---|" + "---|" * len(extra)]
            for r in d["rows"]:
                lines.append(f"| {' '.join(map(str, r['scales']))} | {r['convert_imageset_ips']:.1f} "
                             f"| {r['ours_ips']:.1f} | {r['ratio']:.2f}x |"
                             + "".join(f" {_f(r.get(k), 2)} |" for k in extra))
            lines.append("")
        layer = results.get("data_layer")
        if layer:
            lines += [f"Training data layer (Caffe's Data layer with patch 0005's transform, config "
                      f"{layer['config']} regime {layer['regime']}: {layer['transform']}; vgg-data's S=512 LMDB "
                      f"of {layer['lmdb_images']} JPEGs; batch {layer['batch']}, {layer['batches']} timed "
                      f"batches, process pinned to one core): **{layer['images_per_s_per_core']:.1f} images/s "
                      "per core**.", ""]

    evals = results.get("eval")
    if evals:
        lines += ["## 4. Evaluation: dense against multi-crop, config D", "",
                  f"bench/eval_bench.py (evaluation's benchmark): {evals[0]['images']} photograph(s) per "
                  "protocol and scale, seeded random weights, pycaffe, batch 10. Dense: the whole image and "
                  "its flip through the fully-convolutional net; multi-crop: 50 crops (5x5 grid x 2 flips).",
                  "", "| Q | dense images/s | multi-crop images/s | dense / multi-crop |", "|---|---|---|---|"]
        for r in evals:
            ratio = f"{r['ratio']:.1f}x" if r.get("ratio") else "n/a"
            lines.append(f"| {r['Q']} | {_f(r.get('dense_ips'), 3)} | {_f(r.get('multicrop_ips'), 3)} | {ratio} |")
        lines.append("")

    checks = targets(results)
    if checks:
        lines += ["## Targets of issue 8", "", "| target | this run | |", "|---|---|---|"]
        lines += [f"| {target} | {measured} | {_yes(ok)} |" for target, measured, ok in checks]
        lines.append("")
    return "\n".join(lines)
