"""models/<CONFIG>/readme.md: what the files are, how to run Sec. 3.1's stages, and where we
read the paper (Secs. 2.1, 3.1, 3.2, 3.3, 4.1) rather than copied it. Every figure is derived
from prototxt_gen/table.py, so the readme cannot drift from the prototxts beside it.
"""
from __future__ import annotations

from itertools import groupby

from . import chain, generate, net, table
from .render import number, render


def _stack_text(stack, profile) -> str:
    parts = []
    for conv, group in groupby(stack):
        n = len(list(group))
        parts.append(f"conv{conv.kernel}-{profile.width(conv.channels)}" + (f" x{n}" if n > 1 else ""))
    return ", ".join(parts)


def _regime_rows(config, profile, options) -> list[list[str]]:
    rows = []
    data_dir = options.data_dir or profile.data_dir
    for regime in table.regimes(profile):
        lo, hi = regime.train_scale
        weights = generate.start_weights(config, profile, regime, options)
        rows.append([
            regime.name,
            f"S={lo}" if lo == hi else f"S ~ U[{lo}, {hi}] per image",
            f"`{net.lmdb_path(profile, data_dir, 'train', profile.lmdb_scale_for(hi))}`",
            f"Q={regime.test_scale}",
            f"`{weights}`" if weights else f"random ({options.init})",
            number(regime.base_lr),
            f"`{generate.solver_path(profile, config, regime)}`",
            f"`{generate.snapshot_prefix(profile, config, regime)}_iter_N`",
        ])
    return rows


def _commands(config, profile, options) -> list[str]:
    """The chain of vgg-chain (prototxt_gen.chain), so the readme and the driver cannot drift."""
    stages = chain.stages(config, profile, options)
    return chain.generate_commands(stages, profile) + [
        stage.command + ("" if stage.trains else f"  # writes {stage.output}") for stage in stages]


def _notes(config, profile, options) -> list[str]:
    recipe, schedule = profile.recipe, profile.schedule
    paper_batch = "" if recipe.batch == table.PAPER_RECIPE.batch else f"; the paper batches {table.PAPER_RECIPE.batch}"
    widest = max(table.conv_layers(config, profile), key=lambda c: c.kernel ** 2 * c.in_channels)
    fan_in = widest.kernel ** 2 * widest.in_channels
    literal = fan_in * 1e-2 / 2
    ours = fan_in * recipe.gaussian_std ** 2 / 2
    notes = [
        f"**Gaussian init.** The paper prints \"zero mean and 10^-2 variance\". We read it as standard "
        f"deviation {number(recipe.gaussian_std)} (`--gaussian-std` changes it): a ReLU layer "
        f"multiplies its input's variance by fan_in x std^2 / 2 (He et al. 2015); at this net's widest "
        f"fan-in ({fan_in}, {widest.name}) a literal variance of 1e-2 gives {literal:.1f} per layer, so "
        f"activations explode within a few layers, while std {number(recipe.gaussian_std)} gives "
        f"{ours:.2f}, so they shrink, which is the paper's own observation that deeper nets stall from "
        f"random init; He et al. (2015) also quote VGG's init as std 0.01. Biases are 0. `INIT=xavier` "
        f"uses Glorot & Bengio's uniform init (Caffe `xavier`, `variance_norm: AVERAGE`), with which "
        f"the paper notes deeper nets train without pre-training.",
        "**Learning rate per layer and weight decay.** One learning rate for every layer, biases included "
        f"(the paper names one); the L2 penalty ({number(recipe.weight_decay)}) on weights only.",
        f"**Plateau detection.** The paper divides the lr by 10 \"when the validation set accuracy stopped "
        f"improving\" without saying how that was measured. Here Caffe tests the whole validation LMDB every "
        f"{schedule.test_interval} iterations ({schedule.test_interval * recipe.batch:,} images; an ILSVRC "
        f"epoch is {table.ILSVRC12_TRAIN / 1e6:.2f} M) on the centre {profile.crop} crop at "
        f"the regime's single scale Q, and divides after {schedule.plateau_patience} evaluations without a "
        f"top-1 gain of {number(schedule.plateau_min_delta)}, at most {recipe.lr_drops} times, up to "
        f"{recipe.max_iter} iterations. `--lr-policy multistep` writes fixed drops instead.",
        f"**Later regimes.** S={profile.single_scales[1]} starts from the S={profile.single_scales[0]} net at "
        f"lr {number(recipe.finetune_lr)} (Sec. 3.1); the paper gives no rate for the multi-scale "
        f"fine-tuning from S={profile.single_scales[1]}, so it uses the same. Both keep the plateau schedule "
        f"and the {recipe.max_iter}-iteration cap.",
        f"**Scale jittering and colour shift** run in patched Caffe's data layer (`smallest_side_min/max`, "
        f"`color_shift_*`): each image is rescaled isotropically to its own S, then cropped to "
        f"{profile.crop}, mirrored at random and shifted along the RGB principal components "
        f"(std {number(recipe.color_shift_std)}). The jittered regime reads the "
        f"S{profile.jitter[1]} LMDB, so it only ever downsamples.",
        f"**Mean and PCA**: {options.stats_source}.",
        "**Multi-GPU.** The prototxt batch is per GPU; Caffe averages gradients over GPUs and over "
        f"`iter_size`, so GPUS x batch x iter_size = {recipe.batch} is one step of the recipe's batch "
        f"(Sec. 3.3{paper_batch}).",
        "**Validation during training** is Caffe's single centre crop; the paper's tables use dense and "
        "multi-crop evaluation (`deploy_dense.prototxt`, `vgg-eval`).",
    ]
    if config.note:
        notes.append(f"**What the paper says.** {config.note}")
    if config.lrn:
        notes.append(f"**LRN.** AlexNet's LRN divides by (k + alpha x sum a^2)^beta; Caffe's divides alpha by "
                     f"local_size, so AlexNet's alpha {number(table.LRN_ALPHA)} is written as "
                     f"{number(table.lrn_caffe_alpha())} (local_size {table.LRN_LOCAL_SIZE}, "
                     f"beta {number(table.LRN_BETA)}, k {number(table.LRN_K)}).")
    if not table.initialised_from_a(config):
        depth = config.weight_layers
        notes.append(f"**Random init.** With {depth} weight layers this net is not deeper than A "
                     f"({table.CONFIGS['A'].weight_layers}), so, like A, it trains from random init.")
    return notes


def model_readme(config: table.Config, profile: table.Profile, options) -> str:
    sizes = table.feature_map_sizes(config, profile.crop)
    stacks = [[str(i), _stack_text(stack, profile), f"{sizes[i - 1]}x{sizes[i - 1]}"]
              for i, stack in enumerate(config.stacks, 1)]
    from_a = [[target, source] for target, source in table.layers_from_a(config, profile).items()]
    files = [
        [f"`{generate.train_val_path(profile, config, r)}`", f"training net of regime {r.name}"]
        for r in table.regimes(profile)
    ] + [
        [f"`{generate.deploy_path(profile, config)}`", f"deploy net, Input {profile.deploy_batch}x3x"
                                                      f"{profile.crop}x{profile.crop}, ends in `prob`"],
        [f"`{generate.deploy_path(profile, config, True)}`",
         f"Sec. 3.2 dense net: fc6 a {table.fc6_kernel(config, profile)}x{table.fc6_kernel(config, profile)} "
         "conv, fc7/fc8 1x1; score map `fc8`, soft-max `prob`"],
    ] + [[f"`{generate.solver_path(profile, config, r)}`", f"solver of regime {r.name}"]
         for r in table.regimes(profile)]
    recipe = profile.recipe
    split = table.batch_split(options.gpus, options.batch, recipe.batch)
    recipe_rows = [
        ["batch", split.describe()],
        ["momentum", number(recipe.momentum)],
        ["weight decay", number(recipe.weight_decay)],
        ["dropout (fc6, fc7)", number(recipe.dropout)],
        ["learning rate", f"{number(recipe.base_lr)}, x{number(recipe.gamma)} on plateau, "
                          f"at most {recipe.lr_drops} times"],
        ["iterations", str(recipe.max_iter)],
        ["crop", f"{profile.crop}x{profile.crop}, random, mirrored"],
    ]
    paper = profile is table.PAPER
    return render(
        "readme.md.j2",
        title=f"VGG configuration {config.name}" + ("" if paper else f" ({profile.name} profile)"),
        source=config.source, weight_layers=config.weight_layers, lrn=config.lrn,
        generated=generate.generate_command(config, profile),
        profile_note="" if paper else (f"Reduced-size profile `{profile.name}`: widths / {profile.width_divisor}, "
                                       f"FC {profile.fc_width}, crop {profile.crop}, batch {profile.recipe.batch}, "
                                       f"{profile.num_classes} classes. "
                                       "Not the paper's network."),
        stacks=stacks, crop=profile.crop, fc_width=profile.fc_width, num_classes=profile.num_classes,
        params=f"{table.param_count(config, profile):,}",
        madds=f"{table.multiply_adds(config, profile) / 1e9:.2f}",
        files=files, recipe=recipe_rows, regimes=_regime_rows(config, profile, options),
        commands=_commands(config, profile, options), from_a=from_a, notes=_notes(config, profile, options),
        name=config.name,
        table3=[[s, q, f"{top1}", f"{top5}"] for s, q, top1, top5 in table.TABLE3.get(config.name, [])]
        if paper else [],
        a_first_four=", ".join(c.name for c in table.conv_layers(table.CONFIGS["A"], profile)[:4]),
        own_first_four=", ".join(config.conv_names()[:4]),
    )
