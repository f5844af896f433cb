"""Inputs: Caffe list files and class-folder trees, with every unusable line skipped for a reason."""
import pytest

from data_prep import sources
from data_prep.sources import Entry, InputError, read_inputs


def list_inputs(tmp_path, text, **kw):
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "list.txt").write_text(text)
    return read_inputs(str(tmp_path / "images"), str(tmp_path / "list.txt"), **kw)


def reasons(inputs):
    return {s.where: s.reason for s in inputs.skipped}


def test_list_lines_give_path_label_and_position(tmp_path):
    inputs = list_inputs(tmp_path, "a/1.jpg 0\n\nb/my photo.JPEG 7\n  c/2.png   3  \n")
    assert inputs.entries == [Entry(0, "a/1.jpg", 0), Entry(1, "b/my photo.JPEG", 7), Entry(2, "c/2.png", 3)]
    assert inputs.skipped == []


def test_malformed_line_is_skipped_with_its_line_number(tmp_path):
    inputs = list_inputs(tmp_path, "a.jpg 1\njust-a-path.jpg\n")
    assert [s.reason for s in inputs.skipped] == [sources.MALFORMED_LINE]
    assert inputs.skipped[0].where.endswith("list.txt:2")
    assert len(inputs.entries) == 1


@pytest.mark.parametrize("label", ["cat", "3.0", "1e3", "0x1", "٣"])
def test_label_that_is_not_an_integer_is_skipped(tmp_path, label):
    inputs = list_inputs(tmp_path, f"a.jpg {label}\n")
    assert reasons(inputs) == {"a.jpg": sources.BAD_LABEL}


@pytest.mark.parametrize("label,num_classes", [("-1", None), ("10", 10), ("2147483648", None)])
def test_label_out_of_range_is_skipped(tmp_path, label, num_classes):
    inputs = list_inputs(tmp_path, f"a.jpg {label}\nb.jpg 9\n", num_classes=num_classes)
    assert reasons(inputs) == {"a.jpg": sources.LABEL_OUT_OF_RANGE}
    assert [e.path for e in inputs.entries] == ["b.jpg"]


@pytest.mark.parametrize("path", ["../secret.jpg", "a/../../secret.jpg", "/etc/passwd", ".."])
def test_path_escaping_the_root_is_skipped(tmp_path, path):
    inputs = list_inputs(tmp_path, f"{path} 1\nok/a/../b.jpg 1\n")
    assert reasons(inputs) == {path: sources.PATH_ESCAPES_ROOT}
    assert [e.path for e in inputs.entries] == ["ok/a/../b.jpg"]


def test_missing_or_empty_list_is_an_error(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match="list file not found"):
        read_inputs(str(tmp_path / "images"), str(tmp_path / "nope.txt"))
    with pytest.raises(InputError, match="empty"):
        list_inputs(tmp_path, "\n\n")
    with pytest.raises(InputError, match="image root"):
        read_inputs(str(tmp_path / "no-root"), str(tmp_path / "list.txt"))


def make_tree(root):
    for folder, names in {"n02": ["b.jpg", "a.JPEG", ".hidden.jpg", "notes.txt"], "n01": ["x.png"],
                          "n03": ["deep/y.jpg"]}.items():
        for name in names:
            path = root / "train" / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")


def test_tree_labels_are_sorted_folder_positions(tmp_path):
    make_tree(tmp_path)
    inputs = read_inputs(str(tmp_path), str(tmp_path / "train"))
    assert [(e.path, e.label) for e in inputs.entries] == [
        ("train/n01/x.png", 0), ("train/n02/a.JPEG", 1), ("train/n02/b.jpg", 1), ("train/n03/deep/y.jpg", 2)]
    assert inputs.ignored == 1 and inputs.num_classes == 3  # notes.txt; hidden files are not counted


def test_tree_labels_follow_a_synset_file_and_unknown_folders_are_skipped(tmp_path):
    make_tree(tmp_path)
    (tmp_path / "synsets.txt").write_text("n03 tench, Tinca tinca\nn02 goldfish\nn09 shark\n")
    inputs = read_inputs(str(tmp_path), str(tmp_path / "train"), classes_file=str(tmp_path / "synsets.txt"))
    assert {e.path: e.label for e in inputs.entries} == {
        "train/n02/a.JPEG": 1, "train/n02/b.jpg": 1, "train/n03/deep/y.jpg": 0}
    assert reasons(inputs) == {"train/n01/x.png": sources.UNKNOWN_CLASS}
    assert inputs.num_classes == 3


def test_tree_outside_the_root_and_duplicate_classes_are_errors(tmp_path):
    make_tree(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(InputError, match="not inside the image root"):
        read_inputs(str(tmp_path / "elsewhere"), str(tmp_path / "train"))
    (tmp_path / "dup.txt").write_text("n01\nn02\nn01\n")
    with pytest.raises(InputError, match="twice"):
        read_inputs(str(tmp_path), str(tmp_path / "train"), classes_file=str(tmp_path / "dup.txt"))
