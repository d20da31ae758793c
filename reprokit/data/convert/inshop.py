"""DeepFashion In-shop Clothes Retrieval (Liu et al. 2016): 52,712 images of 7,982 clothing items.

``list_eval_partition.txt`` (at the top of the folder, as open-metric-learning expects it, or in
``Eval/`` as the benchmark's own folder has it) starts with the number of images, then the header
``image_name item_id evaluation_status``, then ``img/WOMEN/Dresses/id_00000002/02_1_front.jpg
id_00000002 train`` lines. The images are ``img/`` from ``img.zip`` (the retrieval images,
256 x 256), beside the list or in ``Img/``; ``img_highres/`` is used when only it is there.
``list_bbox_inshop.txt`` (top or ``Anno/``: ``image_name clothes_type pose_type x_1 y_1 x_2 y_2``)
gives boxes for ``img/``'s images.

Protocol: ``train`` lines train; ``query`` and ``gallery`` lines are validation queries and gallery
items. Training items with a single image are left out (no positive pair; open-metric-learning does
the same). The label is the item number (``id_00000002`` -> 2); the category is ``WOMEN-Dresses``
(a hyphen, not the folder's slash: categories become metric names in the loggers).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from reprokit.data.convert.source_files import ConvertError, check_counted, find_file, read_rows, to_int
from reprokit.data.convert.writer import Box, Images

__all__ = ["read_inshop"]

UNPACKS = "the In-shop Clothes Retrieval Benchmark folder"
FIELDS = ["image_name", "item_id", "evaluation_status"]
BOX_FIELDS = ["image_name", "clothes_type", "pose_type", "x_1", "y_1", "x_2", "y_2"]
STATUS = ("train", "query", "gallery")


def read_inshop(src: Path) -> Images:
    listing = find_file(src, "inshop", ["list_eval_partition.txt", "Eval/list_eval_partition.txt"], UNPACKS)
    rows = _counted_rows(listing, FIELDS)
    for n, (_name, _item, status) in rows:
        if status not in STATUS:
            raise ConvertError(
                f"{listing.name} line {n}: evaluation_status must be one of {', '.join(STATUS)}; got {status!r}"
            )
    image_dir, highres = _image_dir(src, rows[0][1][0])
    boxes: dict[str, Box] | None = None
    box_file = next(
        (src / p for p in ("list_bbox_inshop.txt", "Anno/list_bbox_inshop.txt") if (src / p).is_file()), None
    )
    if box_file is not None and not highres:
        boxes = {
            name: (
                to_int(x1, box_file, n, "x_1"),
                to_int(y1, box_file, n, "y_1"),
                to_int(x2, box_file, n, "x_2"),
                to_int(y2, box_file, n, "y_2"),
            )
            for n, (name, _, _, x1, y1, x2, y2) in _counted_rows(box_file, BOX_FIELDS)
        }
    train_images: dict[int, int] = {}
    parsed = []
    for n, (name, item, status) in rows:
        label = _item_number(item, listing, n)
        parsed.append((name, label, status, _category(name, listing, n)))
        if status == "train":
            train_images[label] = train_images.get(label, 0) + 1
    out = Images()
    dropped = 0
    for name, label, status, category in parsed:
        if status == "train" and train_images[label] < 2:
            dropped += 1
            continue
        path = str(image_dir / (name if not highres else "img_highres/" + name.split("/", 1)[1]))
        box = boxes.get(name) if boxes is not None else None
        out.add(
            label,
            path,
            status == "train",
            query=status == "query",
            gallery=status == "gallery",
            category=category,
            box=box,
        )
    if dropped:
        out.notes.append(f"{dropped:,} training items with a single image were left out (no positive pair to learn)")
    if highres:
        out.notes.append(
            "only img_highres/ found: converted from it, without bounding boxes "
            "(list_bbox_inshop.txt's boxes are drawn on img/'s 256 x 256 images)"
        )
    return out


def _counted_rows(path: Path, fields: list[str]) -> list[tuple[int, list[str]]]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        count_line, header = fh.readline().strip(), fh.readline().split()
    if header != fields:
        raise ConvertError(
            f"{path.name} line 2: expected the header {' '.join(fields)!r}, got {' '.join(header)!r}",
            hint="restore the file from the DeepFashion In-shop archive",
        )
    rows = list(read_rows(path, fields, skip=2))
    check_counted(path, rows, count_line)
    if not rows:
        raise ConvertError(f"{path.name}: no images listed")
    return rows


def _image_dir(src: Path, first: str) -> tuple[PurePosixPath, bool]:
    """(folder the listed names are relative to, whether it is img_highres/), judged on the first listed image."""
    for base in ("", "Img"):
        if (src / base / first).is_file():
            return PurePosixPath(base), False
    highres = "img_highres/" + first.split("/", 1)[-1]
    for base in ("", "Img"):
        if (src / base / highres).is_file():
            return PurePosixPath(base), True
    raise ConvertError(
        f"inshop: the first image list_eval_partition.txt names, {first!r}, is neither in {str(src)!r} nor in its Img/",
        hint="unzip img.zip (the retrieval images) next to list_eval_partition.txt, or into Img/",
    )


def _item_number(item: str, path: Path, line: int) -> int:
    if not item.startswith("id_") or not item[3:].isdigit():
        raise ConvertError(f"{path.name} line {line}: item_id must look like 'id_00000002'; got {item!r}")
    return int(item[3:])


def _category(name: str, path: Path, line: int) -> str:
    parts = PurePosixPath(name).parts
    if len(parts) < 5:
        raise ConvertError(
            f"{path.name} line {line}: image_name must look like "
            f"'img/WOMEN/Dresses/id_00000002/02_1_front.jpg'; got {name!r}"
        )
    return f"{parts[-4]}-{parts[-3]}"
