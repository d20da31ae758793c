"""CUB-200-2011 (Wah et al. 2011): 11,788 bird images of 200 species.

The folder ``CUB_200_2011.tgz`` unpacks to holds ``images.txt`` (``<image_id> <image_name>``, the
name relative to ``images/``), ``image_class_labels.txt`` (``<image_id> <class_id>``, 1..200) and
``bounding_boxes.txt`` (``<image_id> <x> <y> <width> <height>``, floats, 0-based pixels).
Metric-learning protocol: the first half of the classes (1..100) train, the second half (101..200)
is validation, every validation image a query and a gallery item. ``train_test_split.txt`` is the
classification split (the same classes on both sides), so it is not read.
"""

from __future__ import annotations

from pathlib import Path

from reprokit.data.convert.source_files import ConvertError, find_file, read_rows, to_float, to_int
from reprokit.data.convert.writer import Box, Images, class_disjoint_halves

__all__ = ["read_cub"]

UNPACKS = "the folder CUB_200_2011.tgz unpacks to (CUB_200_2011/)"


def read_cub(src: Path) -> Images:
    images_txt = find_file(src, "cub", ["images.txt"], UNPACKS)
    labels_txt = find_file(src, "cub", ["image_class_labels.txt"], UNPACKS)
    names = {
        to_int(i, images_txt, n, "image_id"): name
        for n, (i, name) in read_rows(images_txt, ["image_id", "image_name"], last_may_have_spaces=True)
    }
    classes = {
        to_int(i, labels_txt, n, "image_id"): to_int(c, labels_txt, n, "class_id")
        for n, (i, c) in read_rows(labels_txt, ["image_id", "class_id"])
    }
    boxes = _boxes(src / "bounding_boxes.txt") if (src / "bounding_boxes.txt").is_file() else None
    for image_id in names:
        if image_id not in classes:
            raise ConvertError(
                f"cub: image_class_labels.txt has no class for image {image_id} of images.txt",
                hint="restore image_class_labels.txt from CUB_200_2011.tgz",
            )
        if boxes is not None and image_id not in boxes:
            raise ConvertError(
                f"cub: bounding_boxes.txt has no box for image {image_id} of images.txt",
                hint="restore bounding_boxes.txt from CUB_200_2011.tgz, or remove it (no boxes then)",
            )
    train = class_disjoint_halves([classes[i] for i in names])
    out = Images()
    for image_id, name in sorted(names.items()):
        label = classes[image_id]
        out.add(label, f"images/{name}", label in train, box=boxes[image_id] if boxes is not None else None)
    if boxes is None:
        out.notes.append("no bounding_boxes.txt: converted without bounding boxes")
    return out


def _boxes(path: Path) -> dict[int, Box]:
    found: dict[int, Box] = {}
    for n, (i, *cells) in read_rows(path, ["image_id", "x", "y", "width", "height"]):
        x, y, w, h = (to_float(v, path, n, f) for v, f in zip(cells, ("x", "y", "width", "height"), strict=True))
        # (x, y) is the top-left corner and the box spans width x height pixels: PIL's exclusive right/bottom.
        found[to_int(i, path, n, "image_id")] = (round(x), round(y), round(x + w), round(y + h))
    return found
