"""`reprokit convert NAME SRC --out DIR`: a standard benchmark's official files -> an OML ``df.csv``.

One module per dataset reads its archive's own lists (:mod:`.cub`, :mod:`.cars`, :mod:`.sop`,
:mod:`.inshop`); :mod:`.writer` checks and writes the dataframe; :mod:`.instructions` says what to
put in params.yaml. Nothing is downloaded and no image is copied: the CSV's paths are relative to
SRC (as the dataset's own lists write them), so ``data.root`` is SRC and ``data.dataframe`` the CSV.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reprokit.data.convert.cars import read_cars
from reprokit.data.convert.cub import read_cub
from reprokit.data.convert.inshop import read_inshop
from reprokit.data.convert.instructions import describe
from reprokit.data.convert.sop import read_sop
from reprokit.data.convert.source_files import ConvertError
from reprokit.data.convert.writer import Converted, Images, write_converted

__all__ = ["convert", "describe", "DATASETS", "Converted", "ConvertError"]

DATASETS: dict[str, Callable[[Path], Images]] = {
    "cub": read_cub,
    "cars": read_cars,
    "sop": read_sop,
    "inshop": read_inshop,
}


def convert(dataset: str, src: str | Path, out: str | Path) -> Converted:
    """Read ``src`` (the folder the dataset's archive unpacks to) and write ``out/df.csv``; return the counts."""
    if dataset not in DATASETS:
        raise ConvertError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")
    src = Path(src).expanduser()
    return write_converted(dataset, DATASETS[dataset](src), src, Path(out).expanduser())
