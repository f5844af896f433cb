import io

from evaluation.progress import Progress


def test_a_log_gets_a_line_per_tenth_and_the_last():
    stream = io.StringIO()
    progress = Progress(100, "dense Q=384", stream=stream)
    for _ in range(100):
        progress.advance()
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11
    assert lines[0].startswith("dense Q=384 [...") and " 1/100 " in lines[0] and "img/s" in lines[0]
    assert " 100/100 " in lines[-1] and "#" * 30 in lines[-1]


def test_disabled_progress_writes_nothing():
    stream = io.StringIO()
    progress = Progress(5, "x", stream=stream, enabled=False)
    progress.advance(5, note="skipped 1 unreadable")
    progress.close()
    assert stream.getvalue() == ""
