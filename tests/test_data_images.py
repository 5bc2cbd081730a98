from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tunesmith.data.images import (
    load_image_classification,
    load_labelled_images,
    open_image,
    read_image_inputs,
)
from tunesmith.data.split import stratified_split
from tunesmith.errors import UserError
from tunesmith.recipe import DataConfig


def save(path: Path, mode: str = "RGB", color: object = (200, 30, 30), size=(8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).bytes(300))
    return path


def make_folder(root: Path, per_label: dict[str, int]) -> Path:
    for label, count in per_label.items():
        for i in range(count):
            save(root / label / f"{i:03d}.png", color=(10 * i % 256, 0, 0))
    return root


def test_folder_of_mixed_formats_and_modes(tmp_path):
    root = tmp_path / "imgs"
    save(root / "cat" / "a.png")
    save(root / "cat" / "b.jpg")
    save(root / "cat" / "deep" / "er" / "c.bmp")
    save(root / "cat" / ".hidden.png")
    save(root / "cat" / ".thumbs" / "t.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    save(root / "dog" / "gray.png", mode="L", color=90)
    save(root / "dog" / "alpha.png", mode="RGBA", color=(0, 0, 0, 0))
    palette = Image.new("P", (8, 6), 3)
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] * 64)
    palette.save(root / "dog" / "pal.gif")
    (root / "empty").mkdir()
    save(root / ".cache" / "x.png")
    save(root / "loose.png")  # not inside a label folder

    data = DataConfig(train=str(root))
    examples = load_labelled_images(str(root), data, ["cat", "dog"])

    names = [Path(p).relative_to(root).as_posix() for p in examples.paths]
    assert names == [
        "cat/a.png",
        "cat/b.jpg",
        "cat/deep/er/c.bmp",
        "dog/alpha.png",
        "dog/gray.png",
        "dog/pal.gif",
    ]
    assert all(Path(p).is_absolute() for p in examples.paths)
    assert examples.labels == [0, 0, 0, 1, 1, 1]
    assert examples.rows == list(range(6))
    assert examples.source == str(root) and examples.skipped == []

    images = {Path(p).name: open_image(p) for p in examples.paths}
    assert {im.mode for im in images.values()} == {"RGB"}
    assert images["alpha.png"].getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert images["gray.png"].getpixel((0, 0)) == (90, 90, 90)
    assert images["pal.gif"].getpixel((0, 0)) == (0, 0, 255)
    assert images["c.bmp"].size == (8, 6)


def test_numeric_label_folders_sort_numerically(tmp_path):
    root = make_folder(tmp_path / "d", {"10": 10, "2": 10, "1": 10})
    splits = load_image_classification(DataConfig(train=str(root)), seed=0)
    assert splits.label_names == ["1", "2", "10"]


@pytest.mark.parametrize("through", ["../images/train", "{tmp}/other/../images/train"])
def test_folder_named_through_dot_dot(tmp_path, monkeypatch, through):
    """`..` in data.train: the images' paths are normalised, the folder's was not."""
    make_folder(tmp_path / "images" / "train", {"cat": 10, "dog": 10})
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    train = through.format(tmp=tmp_path)
    splits = load_image_classification(DataConfig(train=train), seed=0)
    assert splits.label_names == ["cat", "dog"]
    paths = splits.train.paths + splits.validation.paths + splits.test.paths
    assert len(paths) == 20 and all(".." not in Path(p).parts for p in paths)
    assert all(p.startswith(str(tmp_path / "images" / "train")) for p in paths)


def test_csv_of_relative_paths(tmp_path):
    save(tmp_path / "pics" / "a.png")
    save(tmp_path / "pics" / "b.png")
    save(tmp_path / "c.png")
    table = tmp_path / "meta" / "labels.csv"
    table.parent.mkdir()
    pd.DataFrame(
        {"file": ["../pics/a.png", "../pics/b.png", str(tmp_path / "c.png")], "y": [1, 0, 1]}
    ).to_csv(table, index=False)

    data = DataConfig(train=str(table), image_column="file", label_column="y")
    examples = load_labelled_images(str(table), data, ["0", "1"], role="--data")
    assert examples.paths == [
        str(tmp_path / "pics" / "a.png"),
        str(tmp_path / "pics" / "b.png"),
        str(tmp_path / "c.png"),
    ]
    assert examples.labels == [1, 0, 1]
    assert examples.rows == [0, 1, 2]


def test_missing_image_column_suggests_the_close_one(tmp_path):
    table = tmp_path / "t.csv"
    pd.DataFrame({"images": ["a.png"], "label": ["x"]}).to_csv(table, index=False)
    with pytest.raises(
        UserError, match=r"data.image_column: column 'image'.*did you mean 'images'"
    ):
        load_image_classification(DataConfig(train=str(table)), seed=0)


def test_missing_image_in_a_table_names_row_and_path(tmp_path):
    save(tmp_path / "a.png")
    table = tmp_path / "t.jsonl"
    pd.DataFrame({"image": ["a.png", "gone.png"], "label": ["x", "y"]}).to_json(
        table, orient="records", lines=True
    )
    missing = str(tmp_path / "gone.png")
    with pytest.raises(UserError) as error:
        load_image_classification(DataConfig(train=str(table)), seed=0)
    message = str(error.value)
    assert "data.train" in message
    assert f"row 1: {missing}: file not found" in message
    assert "data.skip_bad: true" in message


def test_corrupt_image_is_named_and_skip_bad_drops_it(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 6, "b": 6})
    bad = corrupt(root / "b" / "broken.png")
    data = DataConfig(train=str(root))
    with pytest.raises(UserError, match=r"1 image\(s\) cannot be read: .*broken\.png") as error:
        load_image_classification(data, seed=0)
    assert "data.skip_bad: true" in str(error.value)

    data = DataConfig(train=str(root), skip_bad=True)
    splits = load_image_classification(data, seed=0)
    assert len(splits.skipped) == 1 and splits.skipped[0].startswith(f"{bad}: ")
    every = splits.train.paths + splits.validation.paths + splits.test.paths
    assert str(bad) not in every and len(every) == 12
    with pytest.raises(UserError, match=r"broken\.png: cannot read this image"):
        open_image(bad)


def test_png_with_a_bad_checksum_fails_verification(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 3, "b": 3})
    path = root / "a" / "000.png"
    raw = bytearray(path.read_bytes())
    at = raw.index(b"IDAT") + 6  # a byte of the compressed pixels: the chunk CRC no longer fits
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError, match=r"000\.png: broken PNG file \(bad header checksum"):
        load_labelled_images(str(root), DataConfig(train=str(root)), ["a", "b"])


def test_many_bad_images_are_counted_after_ten(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    for i in range(13):
        corrupt(root / "a" / f"bad{i:02d}.jpg")
    with pytest.raises(UserError, match=r"13 image\(s\) cannot be read: .*; and 3 more\."):
        load_image_classification(DataConfig(train=str(root)), seed=0)


def test_truncated_jpeg_cannot_be_opened(tmp_path):
    good = tmp_path / "x.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(good)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:400])
    with pytest.raises(UserError, match=r"cut\.jpg: cannot read this image"):
        open_image(cut)


def test_single_class_folder_is_an_error(tmp_path):
    root = make_folder(tmp_path / "d", {"only": 4})
    (root / "nothing").mkdir()  # label folders without images do not count
    with pytest.raises(UserError, match=r"single class: 'only'.*at least two classes"):
        load_image_classification(DataConfig(train=str(root)), seed=0)


def test_single_label_table_is_an_error(tmp_path):
    save(tmp_path / "a.png")
    table = tmp_path / "t.csv"
    pd.DataFrame({"image": ["a.png", "a.png"], "label": ["x", "x"]}).to_csv(table, index=False)
    with pytest.raises(UserError, match=r"single class: 'x' .*column 'label'"):
        load_image_classification(DataConfig(train=str(table)), seed=0)


def test_folder_without_images_names_the_suffixes(tmp_path):
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    (root / "a" / "readme.txt").write_text("x")
    with pytest.raises(UserError, match=rf"{root}: no images.*\.png.*\.webp"):
        load_image_classification(DataConfig(train=str(root)), seed=0)
    save(root / "flat.png")
    with pytest.raises(UserError, match=r"1 image\(s\) lie directly in it"):
        load_image_classification(DataConfig(train=str(root)), seed=0)


def test_missing_data_path(tmp_path):
    with pytest.raises(UserError, match=r"data.train: not found: .*nope"):
        load_image_classification(DataConfig(train=str(tmp_path / "nope")), seed=0)


def test_stratified_split_sizes_match_text_classification(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 10, "b": 20})
    data = DataConfig(train=str(root), validation_size=0.1, test_size=0.2)
    splits = load_image_classification(data, seed=3)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (21, 3, 6)
    assert splits.validation.labels.count(0) == 1 and splits.test.labels.count(0) == 2
    index = stratified_split([0] * 10 + [1] * 20, 0.1, 0.2, 3)
    assert splits.test.rows == index["test"].tolist()
    assert splits.train.rows == index["train"].tolist()
    again = load_image_classification(data, seed=3)
    assert again.test.paths == splits.test.paths
    other = load_image_classification(data, seed=4)
    assert other.test.paths != splits.test.paths


def test_empty_split_is_an_error(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    with pytest.raises(UserError, match=r"the validation split is empty"):
        load_image_classification(DataConfig(train=str(root)), seed=0)


def test_given_test_folder_with_unknown_label(tmp_path):
    train = make_folder(tmp_path / "train", {"a": 10, "b": 10})
    test = make_folder(tmp_path / "test", {"a": 1, "bird": 2})
    data = DataConfig(train=str(train), test=str(test))
    with pytest.raises(UserError, match=r"data.test: .*'bird' never seen in training"):
        load_image_classification(data, seed=0)

    test = make_folder(tmp_path / "test2", {"a": 2, "b": 3})
    splits = load_image_classification(DataConfig(train=str(train), test=str(test)), seed=0)
    assert splits.test.source == str(test) and len(splits.test) == 5
    assert len(splits.train) + len(splits.validation) == 20


def test_read_image_inputs_file_folder_table(tmp_path):
    one = save(tmp_path / "one.png")
    folder = tmp_path / "batch"
    save(folder / "b.png")
    save(folder / "sub" / "a.jpg")
    save(folder / ".hidden.png")
    (folder / "x.txt").write_text("x")
    save(tmp_path / "listed.png")
    table = tmp_path / "list.csv"
    pd.DataFrame({"image": ["listed.png", "one.png"]}).to_csv(table, index=False)

    data = DataConfig(train="unused")
    paths = read_image_inputs([str(one), str(folder), str(table)], data)
    assert paths == [
        str(one),
        str(folder / "b.png"),
        str(folder / "sub" / "a.jpg"),
        str(tmp_path / "listed.png"),
        str(one),
    ]
    with pytest.raises(UserError, match=r"not found: .*missing\.png"):
        read_image_inputs([str(tmp_path / "missing.png")], data)
    pd.DataFrame({"image": ["gone.png"]}).to_csv(table, index=False)
    with pytest.raises(UserError, match=r"row 0 .*image not found: .*gone\.png"):
        read_image_inputs([str(table)], data)
    with pytest.raises(UserError, match=r"column 'picture' not found"):
        read_image_inputs([str(table)], DataConfig(train="unused", image_column="picture"))


def test_open_image_converts_16_bit_cmyk_and_applies_exif(tmp_path):
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 128 * 257, np.uint16)).save(deep)
    assert open_image(deep).getpixel((0, 0)) == (128, 128, 128)

    cmyk = tmp_path / "c.jpg"
    Image.new("CMYK", (4, 4), (0, 0, 0, 0)).save(cmyk)
    opened = open_image(cmyk)
    assert opened.mode == "RGB" and min(opened.getpixel((1, 1))) > 240

    rotated = tmp_path / "r.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    Image.new("RGB", (8, 4), (0, 0, 0)).save(rotated, exif=exif)
    assert open_image(rotated).size == (4, 8)
