"""Miniature copies of the standard benchmarks' official folders: the real file names and list
formats (as each archive ships them), a few classes, tiny generated JPEGs.

Each builder returns the counts the metric-learning protocol gives for its tree, so a test can check
what `reprokit convert` wrote against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

__all__ = ["Expected", "cub_tree", "cars_tree", "cars_devkit_tree", "sop_tree", "inshop_tree"]

W, H = 40, 30  # every image; the boxes below lie inside it


@dataclass(frozen=True)
class Expected:
    rows: int
    train_rows: int
    train_labels: int
    validation_rows: int
    validation_labels: int
    queries: int
    galleries: int
    categories: int
    boxes: int


def _image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(pixels, mode="RGB").save(path, format="JPEG")


def _lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


# --- CUB-200-2011 ------------------------------------------------------------------------------

CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross", "004.Groove_billed_Ani"]


def cub_tree(root: Path, per_class: int = 3) -> Expected:
    """CUB_200_2011/: images.txt, image_class_labels.txt, train_test_split.txt, bounding_boxes.txt,
    classes.txt and images/<class>/<Name>_<n>_<id>.jpg, as CUB_200_2011.tgz unpacks."""
    images, labels, split, boxes = [], [], [], []
    image_id = 0
    for class_id, folder in enumerate(CUB_CLASSES, start=1):
        species = folder.split(".", 1)[1]
        for n in range(per_class):
            image_id += 1
            name = f"{folder}/{species}_{n + 1:04d}_{796100 + image_id}.jpg"
            _image(root / "images" / name, image_id)
            images.append(f"{image_id} {name}")
            labels.append(f"{image_id} {class_id}")
            split.append(f"{image_id} {n % 2}")  # the classification split: not what metric learning uses
            boxes.append(f"{image_id} {n + 1}.0 {2}.0 {20 + n}.0 {15}.0")  # x y width height, floats
    _lines(root / "images.txt", images)
    _lines(root / "image_class_labels.txt", labels)
    _lines(root / "train_test_split.txt", split)
    _lines(root / "bounding_boxes.txt", boxes)
    _lines(root / "classes.txt", [f"{i} {c}" for i, c in enumerate(CUB_CLASSES, start=1)])
    n_train = per_class * len(CUB_CLASSES) // 2
    return Expected(
        rows=2 * n_train,
        train_rows=n_train,
        train_labels=2,
        validation_rows=n_train,
        validation_labels=2,
        queries=n_train,
        galleries=n_train,
        categories=0,
        boxes=2 * n_train,
    )


# --- Cars196 -----------------------------------------------------------------------------------

CAR_NAMES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012", "Acura TL Type-S 2008"]
BOX_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")


def _mat_scalar(value: int) -> np.ndarray:
    return np.array([[value]], dtype=np.uint16 if value > 255 else np.uint8)  # as MATLAB stored them


def _annotations(rows: list[dict], name_field: str, with_class: bool = True) -> np.ndarray:
    """A MATLAB struct array (1 x N) as scipy.io.savemat writes it from a record array."""
    fields = [name_field, *BOX_FIELDS, *(["class"] if with_class else [])]
    fields += ["test"] if "test" in rows[0] else []
    out = np.zeros((1, len(rows)), dtype=[(f, "O") for f in fields])
    for i, row in enumerate(rows):
        out[0, i] = tuple(np.array([row[f]]) if f == name_field else _mat_scalar(row[f]) for f in fields)
    return out


def _class_names() -> np.ndarray:
    names = np.empty((1, len(CAR_NAMES)), dtype=object)
    for i, name in enumerate(CAR_NAMES):
        names[0, i] = np.array([name])
    return names


def _car_box(i: int) -> dict:
    return {"bbox_x1": 1 + i % 3, "bbox_y1": 2, "bbox_x2": 30 + i % 5, "bbox_y2": H}  # 1-based, inclusive


def cars_tree(root: Path, per_class: int = 3) -> Expected:
    """Cars196 "all images": cars_annos.mat (annotations: relative_im_path, bbox_*, class, test;
    class_names) and car_ims/000001.jpg ..."""
    rows = []
    for i in range(per_class * len(CAR_NAMES)):
        path = f"car_ims/{i + 1:06d}.jpg"
        _image(root / path, i)
        rows.append({"relative_im_path": path, **_car_box(i), "class": i % len(CAR_NAMES) + 1, "test": i % 2})
    scipy.io.savemat(
        root / "cars_annos.mat", {"annotations": _annotations(rows, "relative_im_path"), "class_names": _class_names()}
    )
    n = len(rows) // 2
    return Expected(
        rows=2 * n,
        train_rows=n,
        train_labels=2,
        validation_rows=n,
        validation_labels=2,
        queries=n,
        galleries=n,
        categories=0,
        boxes=2 * n,
    )


def cars_devkit_tree(root: Path, per_class: int = 4) -> Expected:
    """Cars196 devkit layout: devkit/cars_meta.mat, devkit/cars_train_annos.mat (+ cars_test_annos.mat
    without classes), cars_test_annos_withlabels.mat, cars_train/00001.jpg, cars_test/00001.jpg."""
    by_folder: dict[str, list[dict]] = {"cars_train": [], "cars_test": []}
    for i in range(per_class * len(CAR_NAMES)):
        folder = "cars_train" if i % 2 == 0 else "cars_test"  # every class on both sides, as the devkit splits
        fname = f"{len(by_folder[folder]) + 1:05d}.jpg"
        _image(root / folder / fname, i)
        by_folder[folder].append({"fname": fname, **_car_box(i), "class": (i // 2) % len(CAR_NAMES) + 1})
    (root / "devkit").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "devkit/cars_meta.mat", {"class_names": _class_names()})
    train, test = by_folder["cars_train"], by_folder["cars_test"]
    scipy.io.savemat(root / "devkit/cars_train_annos.mat", {"annotations": _annotations(train, "fname")})
    # The devkit's own test annotations have no classes; the labelled ones came out later, beside devkit/.
    unlabelled = _annotations(test, "fname", with_class=False)
    scipy.io.savemat(root / "devkit/cars_test_annos.mat", {"annotations": unlabelled})
    scipy.io.savemat(root / "cars_test_annos_withlabels.mat", {"annotations": _annotations(test, "fname")})
    n = per_class * len(CAR_NAMES) // 2
    return Expected(
        rows=2 * n,
        train_rows=n,
        train_labels=2,
        validation_rows=n,
        validation_labels=2,
        queries=n,
        galleries=n,
        categories=0,
        boxes=2 * n,
    )


# --- Stanford Online Products ------------------------------------------------------------------

SOP_HEADER = "image_id class_id super_class_id path"


def sop_tree(root: Path) -> Expected:
    """Stanford_Online_Products/: Ebay_train.txt, Ebay_test.txt (header + one image per line),
    Ebay_info.txt, and <super_class>_final/<product>_<n>.JPG."""
    supers = {1: "bicycle_final", 2: "cabinet_final", 3: "chair_final"}
    # (class_id, super_class_id, images): classes 1..4 train, 5..8 test, as the lists number them.
    products = [(1, 1, 2), (2, 1, 3), (3, 2, 2), (4, 3, 4), (5, 1, 2), (6, 2, 3), (7, 2, 2), (8, 3, 2)]
    train, test, info = [SOP_HEADER], [SOP_HEADER], [SOP_HEADER]
    image_id = 0
    for class_id, super_id, count in products:
        for n in range(count):
            image_id += 1
            path = f"{supers[super_id]}/{111085122800 + class_id}_{n}.JPG"
            _image(root / path, image_id)
            line = f"{image_id} {class_id} {super_id} {path}"
            (train if class_id <= 4 else test).append(line)
            info.append(line)
    _lines(root / "Ebay_train.txt", train)
    _lines(root / "Ebay_test.txt", test)
    _lines(root / "Ebay_info.txt", info)
    n_train, n_test = len(train) - 1, len(test) - 1
    return Expected(
        rows=n_train + n_test,
        train_rows=n_train,
        train_labels=4,
        validation_rows=n_test,
        validation_labels=4,
        queries=n_test,
        galleries=n_test,
        categories=3,
        boxes=0,
    )


# --- DeepFashion In-shop -----------------------------------------------------------------------

# (item, category folder, [evaluation_status of each image]); id 3 has a single training image.
INSHOP_ITEMS = [
    (1, "WOMEN/Dresses", ["train", "train"]),
    (2, "WOMEN/Blouses_Shirts", ["train", "train", "train"]),
    (3, "MEN/Denim", ["train"]),
    (4, "MEN/Denim", ["train", "train"]),
    (5, "WOMEN/Dresses", ["query", "gallery", "gallery"]),
    (6, "MEN/Tees_Tanks", ["query", "query", "gallery"]),
    (7, "WOMEN/Blouses_Shirts", ["gallery", "query", "gallery"]),
]
VIEWS = ["1_front", "2_side", "3_back", "4_full"]


def _counted(path: Path, header: str, rows: list[str]) -> None:
    """DeepFashion's list format: the number of images, the header, then aligned columns."""
    _lines(path, [str(len(rows)), header, *rows])


def inshop_tree(root: Path, official: bool = False) -> Expected:
    """The In-shop benchmark: list_eval_partition.txt, list_bbox_inshop.txt and img/ at the top (the
    layout open-metric-learning documents) or, with ``official``, as the benchmark's folder has them:
    Eval/list_eval_partition.txt, Anno/list_bbox_inshop.txt, Img/img/ (img.zip unzipped in Img/)."""
    partition, boxes = [], []
    for item, category, statuses in INSHOP_ITEMS:
        for n, status in enumerate(statuses):
            name = f"img/{category}/id_{item:08d}/{n + 1:02d}_{VIEWS[n]}.jpg"
            _image(root / ("Img" if official else "") / name, item * 10 + n)
            partition.append(f"{name:<60} id_{item:08d}      {status}")
            boxes.append(f"{name:<60} 1  {n + 1}  {2 + n}  3  {30 + n}  {25}")
    _counted(
        root / ("Eval" if official else "") / "list_eval_partition.txt",
        "image_name item_id evaluation_status",
        partition,
    )
    _counted(
        root / ("Anno" if official else "") / "list_bbox_inshop.txt",
        "image_name clothes_type pose_type x_1 y_1 x_2 y_2",
        boxes,
    )
    train = [s for _, _, st in INSHOP_ITEMS for s in st if s == "train" and len(st) > 1]
    val = [s for _, _, st in INSHOP_ITEMS for s in st if s != "train"]
    rows = len(train) + len(val)
    return Expected(
        rows=rows,
        train_rows=len(train),
        train_labels=3,
        validation_rows=len(val),
        validation_labels=3,
        queries=val.count("query"),
        galleries=val.count("gallery"),
        categories=4,
        boxes=rows,
    )
