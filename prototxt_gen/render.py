"""Templates in, validated Caffe text out, written atomically.

Every NetParameter and SolverParameter is parsed back with Caffe's own `caffe_pb2` before it
is written, so a field that Caffe does not know, or a malformed value, stops the generator
instead of `caffe train`. A set of files is written only after all of them validated, each
through a temporary file in its own directory and `os.replace`, so a failure never leaves a
half-written prototxt or a half-updated model directory.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


class GenerationError(ValueError):
    """A file the generator would write is invalid; the message names it."""


def number(value) -> str:
    """Protobuf text for a number: ints as ints, floats round-tripping float32 (9 digits)."""
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers here")
    if isinstance(value, int):
        return str(value)
    text = format(float(value), ".9g")
    return text


def quoted(value: str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


_ENV: jinja2.Environment | None = None


def environment() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            autoescape=False,
        )
        _ENV.filters["num"] = number
        _ENV.filters["q"] = quoted
    return _ENV


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def parse(text: str, message_type: str, what: str = "generated text"):
    """Parse text into caffe_pb2.<message_type>; GenerationError names `what` on failure."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    message = getattr(caffe_pb2, message_type)()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise GenerationError(f"{what}: not a valid {message_type}: {exc}") from None
    return message


def check_net(text: str, what: str):
    """Parse as NetParameter and check the graph Caffe would otherwise reject at run time."""
    from caffe.proto import caffe_pb2

    net = parse(text, "NetParameter", what)
    for phase in (caffe_pb2.TRAIN, caffe_pb2.TEST):
        names, tops = set(), set()
        for layer in net.layer:
            # the include/exclude rules the generators use are phase-only
            if layer.include and not any(rule.phase == phase for rule in layer.include):
                continue
            if any(rule.phase == phase for rule in layer.exclude):
                continue
            if layer.name in names:
                raise GenerationError(f"{what}: duplicate layer name {layer.name!r}")
            names.add(layer.name)
            for bottom in layer.bottom:
                if bottom not in tops:
                    raise GenerationError(
                        f"{what}: layer {layer.name!r} reads {bottom!r} before any layer writes it")
            tops.update(layer.top)
    return net


def write_all(files: Mapping[Path, str]) -> list[Path]:
    """Write every file atomically (temp file beside it, then rename). Returns the paths."""
    written = []
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        written.append(path)
    return written
