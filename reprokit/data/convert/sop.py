"""Stanford Online Products (Song et al. 2016): 120,053 images of 22,634 products in 12 super-classes.

The folder ``Stanford_Online_Products.zip`` unpacks to holds ``Ebay_train.txt`` and
``Ebay_test.txt``, each with the header ``image_id class_id super_class_id path`` and one image per
line (``1 1 1 bicycle_final/111085122871_0.JPG``), and a folder per super-class. Protocol: the
train file's products train (11,318 of them), the test file's (11,316) are validation, every
validation image a query and a gallery item; ``super_class_id`` is the category.
"""

from __future__ import annotations

from pathlib import Path

from reprokit.data.convert.source_files import ConvertError, find_file, read_rows, to_int
from reprokit.data.convert.writer import Images

__all__ = ["read_sop"]

UNPACKS = "the folder Stanford_Online_Products.zip unpacks to (Stanford_Online_Products/)"
FIELDS = ["image_id", "class_id", "super_class_id", "path"]


def read_sop(src: Path) -> Images:
    files = [
        (find_file(src, "sop", [name], UNPACKS), name == "Ebay_train.txt")
        for name in ("Ebay_train.txt", "Ebay_test.txt")
    ]
    out = Images()
    for path, train in files:
        rows = read_rows(path, FIELDS, last_may_have_spaces=True)
        first = next(rows, None)
        if first is None or first[1] != FIELDS:
            got = " ".join(first[1]) if first else "an empty file"
            raise ConvertError(
                f"{path.name} line 1: expected the header {' '.join(FIELDS)!r}, got {got!r}",
                hint="restore the file from Stanford_Online_Products.zip",
            )
        for n, (_, class_id, super_class_id, image) in rows:
            out.add(
                to_int(class_id, path, n, "class_id"),
                image,
                train,
                category=str(to_int(super_class_id, path, n, "super_class_id")),
            )
    return out
