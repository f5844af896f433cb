"""Where the training and validation images are, and their labels (the inputs of Sec. 3.1).

Two forms a user actually has:
- an image root plus a Caffe list file, one `relative/path label` per line, as Caffe's
  `convert_imageset` reads it (the label is the last word; the path may contain spaces);
- an ImageNet-style tree, one folder per class: labels are the positions of the folder names
  in a class file (a synset file: the first word of each line, e.g. `n01440764 tench`), or,
  without one, in the sorted list of folder names.

A line or file that cannot be used is not fatal: it becomes a `Skipped` with a reason, counted
and reported like an undecodable image. A missing list or tree is fatal (`InputError`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

MALFORMED_LINE = "malformed-line"
BAD_LABEL = "bad-label"
LABEL_OUT_OF_RANGE = "label-out-of-range"
PATH_ESCAPES_ROOT = "path-escapes-root"
UNKNOWN_CLASS = "unknown-class"

# Caffe's Datum.label is an int32.
MAX_LABEL = 2**31 - 1
IMAGE_EXTENSIONS = frozenset([".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".ppm", ".pgm", ".pnm"])
_INTEGER = re.compile(r"[+-]?[0-9]+")


class InputError(ValueError):
    """The inputs as a whole are unusable (missing list, no classes, ...)."""


@dataclass(frozen=True)
class Entry:
    index: int   # position in the input order (seeds the image's PCA sample)
    path: str    # relative to the image root, as listed: the LMDB key's suffix
    label: int


@dataclass(frozen=True)
class Skipped:
    where: str   # the image path, or `list:line` when the line names no usable path
    reason: str
    detail: str


@dataclass
class Inputs:
    entries: list[Entry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # Files in a class tree that are not images by their extension (not counted as bad).
    ignored: int = 0
    num_classes: int | None = None


def read_inputs(root: str, listing: str, classes_file: str | None = None,
                num_classes: int | None = None) -> Inputs:
    """A list file or a class-folder tree (`listing` is a directory) under `root`."""
    if not os.path.isdir(root):
        raise InputError(f"image root is not a directory: {root}")
    if os.path.isdir(listing):
        if num_classes is not None:
            raise InputError("--num-classes applies to list files; a class tree's classes define it")
        return read_tree(root, listing, classes_file)
    if classes_file is not None:
        raise InputError("--classes applies to a class-folder tree, not to a list file")
    return read_list(root, listing, num_classes)


def _inside_root(relative: str) -> bool:
    if os.path.isabs(relative):
        return False
    normal = os.path.normpath(relative)
    return normal != ".." and not normal.startswith(".." + os.sep)


def read_list(root: str, list_path: str, num_classes: int | None = None) -> Inputs:
    try:
        with open(list_path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise InputError(f"list file not found: {list_path}") from None
    except OSError as exc:
        raise InputError(f"cannot read the list file {list_path}: {exc.strerror or exc}") from None
    inputs = Inputs(num_classes=num_classes)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{list_path}:{number}"
        parts = line.strip().rsplit(None, 1)
        if len(parts) != 2:
            inputs.skipped.append(Skipped(where, MALFORMED_LINE,
                                          f"expected 'relative/path label', got {line.strip()!r}"))
            continue
        path, label_text = parts
        if not _INTEGER.fullmatch(label_text):
            inputs.skipped.append(Skipped(path, BAD_LABEL, f"label {label_text!r} is not an integer ({where})"))
            continue
        label = int(label_text)
        top = MAX_LABEL if num_classes is None else num_classes - 1
        if not 0 <= label <= top:
            inputs.skipped.append(Skipped(path, LABEL_OUT_OF_RANGE, f"label {label} is outside [0, {top}] ({where})"))
            continue
        if not _inside_root(path):
            inputs.skipped.append(Skipped(path, PATH_ESCAPES_ROOT, f"the path leads outside the image root ({where})"))
            continue
        inputs.entries.append(Entry(len(inputs.entries), path, label))
    if not inputs.entries and not inputs.skipped:
        raise InputError(f"the list file is empty: {list_path}")
    return inputs


def read_class_names(classes_file: str) -> list[str]:
    """The first word of each non-blank line: a synset file (`n01440764 tench, ...`) or plain names."""
    try:
        with open(classes_file, encoding="utf-8") as f:
            names = [line.split()[0] for line in f if line.strip()]
    except FileNotFoundError:
        raise InputError(f"class file not found: {classes_file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the class file {classes_file}: {exc}") from None
    seen = set()
    for name in names:
        if name in seen:
            raise InputError(f"class {name!r} appears twice in {classes_file}")
        seen.add(name)
    if not names:
        raise InputError(f"the class file is empty: {classes_file}")
    return names


def read_tree(root: str, tree: str, classes_file: str | None = None) -> Inputs:
    relative_tree = os.path.relpath(tree, root)
    if not _inside_root(relative_tree):
        raise InputError(f"the class tree {tree} is not inside the image root {root}")
    folders = sorted(name for name in os.listdir(tree)
                     if not name.startswith(".") and os.path.isdir(os.path.join(tree, name)))
    names = read_class_names(classes_file) if classes_file else folders
    if not names:
        raise InputError(f"no class folders in {tree}")
    labels = {name: label for label, name in enumerate(names)}
    inputs = Inputs(num_classes=len(names))
    for folder in folders:
        label = labels.get(folder)
        for directory, subdirs, files in os.walk(os.path.join(tree, folder), followlinks=True):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                    inputs.ignored += 1
                    continue
                path = os.path.relpath(os.path.join(directory, name), root)
                if label is None:
                    inputs.skipped.append(Skipped(path, UNKNOWN_CLASS, f"folder {folder!r} is not in {classes_file}"))
                else:
                    inputs.entries.append(Entry(len(inputs.entries), path, label))
    if not inputs.entries and not inputs.skipped:
        raise InputError(f"no images in the class tree {tree}")
    return inputs
