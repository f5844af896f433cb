"""vgg-data: image datasets to LMDBs at every training scale of Sec. 3.1, with the statistics
of Sec. 2.1 (mean pixel) and Sec. 3.1 (colour PCA). See build.py for what it writes."""
from __future__ import annotations

import argparse
import sys

from .build import BuildConfig, BuildError, build, summary
from .convert import (DEFAULT_CROP_SIZE, DEFAULT_JPEG_QUALITY, DEFAULT_MAX_PIXELS,
                      DEFAULT_PCA_PIXELS_PER_IMAGE, ConvertOptions)
from .sources import InputError

PROG = "vgg-data"
# Sec. 3.1: S = 256, S = 384 and the top of the jitter range [256, 512].
DEFAULT_SCALES = (256, 384, 512)
DEFAULT_MAX_BAD_FRACTION = 0.01


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _non_negative(text: str) -> int:
    return 0 if text == "0" else _positive(text)


def _quality(text: str) -> int:
    value = _positive(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"JPEG quality is 1..100: {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a fraction is in [0, 1]: {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Convert an image set to Caffe LMDBs, one per training scale S (smallest image side"
                    " after isotropic rescaling, never warped), with the mean pixel and colour PCA of"
                    " the images. Writes OUT/S<S>_lmdb, OUT/stats.json, OUT/mean.binaryproto and"
                    " OUT/report.txt (one line per skipped input).",
        epilog="Run it once per split (train and val into separate OUT directories). An interrupted"
               " run leaves nothing under the final names; rerunning it cleans up and starts over.")
    p.add_argument("--root", required=True, help="image root: list paths are relative to it")
    p.add_argument("--list", required=True, dest="listing", metavar="LIST",
                   help="a Caffe list file ('relative/path label' per line) or a class-folder tree"
                        " (one folder per class) inside ROOT")
    p.add_argument("--out", required=True, help="output directory (created if needed)")
    p.add_argument("--scales", type=_positive, nargs="+", default=list(DEFAULT_SCALES), metavar="S",
                   help="smallest sides to write, one LMDB each (default: %(default)s)")
    p.add_argument("--classes", dest="classes_file", metavar="FILE",
                   help="class-folder tree only: class names, one per line (first word; a synset file"
                        " works); label = line number from 0. Default: sorted folder names")
    p.add_argument("--num-classes", type=_positive, metavar="N",
                   help="list file only: labels must be in [0, N)")
    p.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=True,
                   help="write the records in a seeded random order, as training wants (default: on;"
                        " use --no-shuffle for validation)")
    p.add_argument("--seed", type=_non_negative, default=0,
                   help="seed of the shuffle and of the PCA pixel sample (default: %(default)s)")
    p.add_argument("--quality", type=_quality, default=DEFAULT_JPEG_QUALITY,
                   help="JPEG quality of re-encoded images (default: %(default)s)")
    p.add_argument("--max-pixels", type=_positive, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help="skip images with more pixels than this, before decoding (default: %(default)s)")
    p.add_argument("--crop-size", type=_positive, default=DEFAULT_CROP_SIZE, metavar="N",
                   help="count images whose smallest side is below the training crop (default: %(default)s)")
    p.add_argument("--max-bad-fraction", type=_fraction, default=DEFAULT_MAX_BAD_FRACTION, metavar="F",
                   help="exit non-zero when more than this fraction of the inputs was skipped"
                        " (default: %(default)s)")
    p.add_argument("--pca-pixels-per-image", type=_positive, default=DEFAULT_PCA_PIXELS_PER_IMAGE,
                   metavar="K", help="pixels sampled from each image for the colour PCA (default: %(default)s)")
    p.add_argument("--workers", type=_non_negative, default=0, metavar="N",
                   help="decoding processes (default: 0 = one per core)")
    p.add_argument("--reduced-decode", action=argparse.BooleanOptionalAction, default=False,
                   help="decode large JPEGs straight to 1/2, 1/4 or 1/8 size (libjpeg DCT scaling) when"
                        " that is still at least the largest S: much faster on big photographs, but a"
                        " different filter from area averaging (default: off)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show a progress line on stderr (default: on)")
    return p


def main(argv=None) -> int:
    """The command line (argv None: sys.argv, this process is the tool) or a call with argv."""
    args = parser().parse_args(argv)
    try:
        options = ConvertOptions(scales=tuple(sorted(set(args.scales))), quality=args.quality,
                                 max_pixels=args.max_pixels, crop_size=args.crop_size,
                                 reduced_decode=args.reduced_decode,
                                 pca_pixels_per_image=args.pca_pixels_per_image, seed=args.seed)
        result = build(BuildConfig(root=args.root, listing=args.listing, out=args.out, options=options,
                                   classes_file=args.classes_file, num_classes=args.num_classes,
                                   shuffle=args.shuffle, seed=args.seed, workers=args.workers,
                                   progress=args.progress, standalone_proto=argv is None))
    except (BuildError, InputError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was published", file=sys.stderr)
        return 130
    print(summary(result))
    if result.bad_fraction > args.max_bad_fraction:
        print(f"{PROG}: error: {len(result.skipped)} of {result.inputs} inputs"
              f" ({100 * result.bad_fraction:.2f}%) were skipped, more than --max-bad-fraction"
              f" {args.max_bad_fraction}; see {result.out}/report.txt", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
