"""``reprokit compare A B``: what changed between two finished runs, metric by metric and query by query.

Both runs are read as their revisions recorded them (:mod:`reprokit.provenance.committed_run`).
They must have used the same validation data — the same validation rows (paths, labels, query and
gallery flags, categories, sequences, boxes) and, where DVC tracks the images, the same image
contents — or the comparison is refused with one line naming the first difference. Queries are
matched by their ``path``; a query *regressed* when it was correct at CMC@1 in A and is wrong in
B, *improved* the other way round; both lists are ordered by the change of ``visualize.metric``
(B's, else A's), the largest change first, ties by path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from reprokit.core.errors import CompareError
from reprokit.data.columns import BBOX_COLUMNS
from reprokit.provenance.committed_run import VALIDATION_COLUMNS, CommittedRun, read_committed_run

__all__ = [
    "Comparison",
    "Flip",
    "Retrieved",
    "compare_runs",
    "compare",
    "check_same_validation_data",
    "format_comparison",
    "titles",
]

TRUE_CELLS = {"true", "1", "1.0", "yes"}
DEFAULT_METRIC, DEFAULT_TOP_K = "map@5", 5


@dataclass(frozen=True)
class Retrieved:
    path: str
    distance: float
    relevant: bool | None  # same label as the query; None when the item's label is unknown


@dataclass
class Flip:
    path: str
    label: int
    category: str | None
    metric_a: float
    metric_b: float
    top_a: list[Retrieved] = field(default_factory=list)
    top_b: list[Retrieved] = field(default_factory=list)

    @property
    def change(self) -> float:
        return self.metric_b - self.metric_a


@dataclass
class Comparison:
    a: CommittedRun
    b: CommittedRun
    metric: str
    n_queries: int  # matched queries with ground truth in both runs
    regressed: list[Flip]
    improved: list[Flip]
    overall: list[tuple[str, float | None, float | None]]
    by_category: dict[str, list[tuple[str, float | None, float | None]]]


def _example(values) -> str:
    return repr(sorted(values)[0])


def _normalised(column: str, values: pd.Series) -> pd.Series:
    if column in ("is_query", "is_gallery"):
        return values.astype(str).str.strip().str.lower().isin(TRUE_CELLS)
    if column == "label" or column in BBOX_COLUMNS:
        return values.map(lambda v: str(v).strip()).map(lambda v: str(float(v)) if v not in ("", "nan") else "")
    return values.astype(str).str.strip()


def _check_paths(what: str, a: set[str], b: set[str], a_label: str, b_label: str) -> None:
    only_a, only_b = a - b, b - a
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} of A's {len(a)} are not in B's (e.g. {_example(only_a)})")
        if only_b:
            parts.append(f"{len(only_b)} of B's {len(b)} are not in A's (e.g. {_example(only_b)})")
        raise CompareError(
            f"the runs used different validation data: the {what} differ — {'; '.join(parts)} "
            f"(A: {a_label}, B: {b_label})",
            hint="compare runs of the same validation split",
        )


def _unique_query_paths(run: CommittedRun, name: str) -> None:
    counts = run.per_query["path"].value_counts()
    repeated = counts[counts > 1]
    if len(repeated):
        raise CompareError(
            f"{name} ({run.label}): {len(repeated)} query paths occur more than once in per_query.tsv "
            f"(e.g. {repeated.index[0]!r} {int(repeated.iloc[0])} times); compare matches queries by path"
        )


def check_same_validation_data(a: CommittedRun, b: CommittedRun) -> None:
    """Raise :class:`CompareError` naming the first difference between the two runs' validation data."""
    for run, name in ((a, "A"), (b, "B")):
        _unique_query_paths(run, name)
    _check_paths("validation query paths", set(a.per_query["path"]), set(b.per_query["path"]), a.label, b.label)
    labels = a.per_query.set_index("path")["label"].astype(int)
    other = b.per_query.set_index("path")["label"].astype(int).reindex(labels.index)
    wrong = labels.index[(labels != other).to_numpy()]
    if len(wrong):
        p = wrong[0]
        raise CompareError(
            f"the runs used different validation data: {len(wrong)} queries have another label in B "
            f"(e.g. {p!r}: {labels[p]} in A, {other[p]} in B)"
        )
    if a.validation is not None and b.validation is not None:
        _check_rows(a, b)
    shared = set(a.image_md5) & set(b.image_md5)
    val_paths = set(a.validation["path"]) if a.validation is not None else set(a.per_query["path"])
    changed = sorted(p for p in shared & val_paths if a.image_md5[p] != b.image_md5[p])
    if changed:
        raise CompareError(
            f"the runs used different validation data: {len(changed)} validation images differ in content "
            f"(e.g. {changed[0]!r}: md5 {a.image_md5[changed[0]][:12]} in A, {b.image_md5[changed[0]][:12]} in B)",
            hint="compare runs of the same validation split",
        )


def _check_rows(a: CommittedRun, b: CommittedRun) -> None:
    va, vb = a.validation, b.validation
    assert va is not None and vb is not None  # the one caller checks both first
    for frame, run, name in ((va, a, "A"), (vb, b, "B")):
        counts = frame["path"].value_counts()
        if (counts > 1).any() and not all(c in frame.columns for c in BBOX_COLUMNS):
            raise CompareError(
                f"{name} ({run.label}): validation paths repeat without bounding boxes "
                f"(e.g. {counts.index[0]!r}); compare matches items by path"
            )
    _check_paths(
        "validation items (the dataframe's validation rows)", set(va["path"]), set(vb["path"]), a.label, b.label
    )
    if va["path"].duplicated().any() or vb["path"].duplicated().any():
        return  # several boxes per image: rows are matched by path only, as far as that goes
    ia, ib = va.set_index("path"), vb.set_index("path").reindex(va["path"])
    for column in (*VALIDATION_COLUMNS, *BBOX_COLUMNS):
        in_a, in_b = column in ia.columns, column in ib.columns
        if in_a != in_b:
            raise CompareError(
                f"the runs used different validation data: column {column!r} is only in "
                f"{'A' if in_a else 'B'}'s dataframe"
            )
        if not in_a:
            continue
        x, y = _normalised(column, ia[column]), _normalised(column, ib[column])
        differs = (x != y).to_numpy()
        if differs.any():
            p = ia.index[differs][0]
            raise CompareError(
                f"the runs used different validation data: {column!r} differs in {int(differs.sum())} validation "
                f"rows (e.g. {p!r}: {ia[column][p]!r} in A, {ib[column][p]!r} in B)"
            )


def _metric(a: CommittedRun, b: CommittedRun, wanted: str | None) -> str:
    metric = wanted or next(
        (m for m in (b.params.get("visualize", {}).get("metric"), a.params.get("visualize", {}).get("metric")) if m),
        DEFAULT_METRIC,
    )
    missing = [r.label for r in (a, b) if metric not in r.per_query.columns]
    if missing:
        common = [
            c
            for c in a.per_query.columns
            if c in b.per_query.columns and ("@" in c or c in ("mrr", "ap", "r_precision"))
        ]
        raise CompareError(
            f"metric {metric!r} is not in the per-query table of {', '.join(missing)}; both have: {', '.join(common)}",
            hint="pass --metric NAME",
        )
    return metric


def _top(row: pd.Series, paths: list[str], label_of: dict[str, int], k: int) -> list[Retrieved]:
    query_label = int(row["label"])
    out = []
    for path, dist in list(zip(paths, row["distances"]))[:k]:
        label = label_of.get(path)
        out.append(Retrieved(path, float(dist), None if label is None else label == query_label))
    return out


def _labels(a: CommittedRun) -> dict[str, int]:
    found = dict(zip(a.per_query["path"], a.per_query["label"].astype(int)))
    if a.validation is not None and "label" in a.validation.columns:
        for path, label in zip(a.validation["path"], a.validation["label"]):
            try:
                found.setdefault(path, int(float(label)))
            except ValueError:
                continue
    return found


def _deltas(a: dict[str, float], b: dict[str, float]) -> list[tuple[str, float | None, float | None]]:
    names = list(a) + [m for m in b if m not in a]
    return [(m, a.get(m), b.get(m)) for m in names]


def compare(a: CommittedRun, b: CommittedRun, metric: str | None = None, top_k: int | None = None) -> Comparison:
    """The comparison of two runs already read (refused when their validation data differ)."""
    check_same_validation_data(a, b)
    metric = _metric(a, b, metric)
    k = top_k or int(b.params.get("visualize", {}).get("top_k") or DEFAULT_TOP_K)
    label_of = _labels(a)
    pa, pb = a.per_query.copy(), b.per_query.copy()
    pa["_paths"], pb["_paths"] = a.retrieved_paths(), b.retrieved_paths()
    both = pa.merge(pb, on="path", suffixes=("_a", "_b"), validate="one_to_one")
    both = both[both["cmc@1_a"].notna() & both["cmc@1_b"].notna()]
    regressed: list[Flip] = []
    improved: list[Flip] = []
    for _, r in both.iterrows():
        hit_a, hit_b = r["cmc@1_a"] >= 0.5, r["cmc@1_b"] >= 0.5
        if hit_a == hit_b:
            continue
        row_a = pd.Series({"label": r["label_a"], "distances": r["distances_a"]})
        row_b = pd.Series({"label": r["label_b"], "distances": r["distances_b"]})
        category = r.get("category_a")
        flip = Flip(
            path=r["path"],
            label=int(r["label_a"]),
            category=None
            if category is None or (isinstance(category, float) and math.isnan(category))
            else str(category),
            metric_a=float(r[f"{metric}_a"]),
            metric_b=float(r[f"{metric}_b"]),
            top_a=_top(row_a, r["_paths_a"], label_of, k),
            top_b=_top(row_b, r["_paths_b"], label_of, k),
        )
        (regressed if hit_a else improved).append(flip)
    regressed.sort(key=lambda f: (f.change, f.path))
    improved.sort(key=lambda f: (-f.change, f.path))
    categories = sorted(set(a.by_category) | set(b.by_category), key=_category_key)
    return Comparison(
        a=a,
        b=b,
        metric=metric,
        n_queries=len(both),
        regressed=regressed,
        improved=improved,
        overall=_deltas(a.overall, b.overall),
        by_category={c: _deltas(a.by_category.get(c, {}), b.by_category.get(c, {})) for c in categories},
    )


def _category_key(cat: str):
    try:
        return (0, float(cat), cat)
    except ValueError:
        return (1, 0.0, cat)


def compare_runs(repo: Path, rev_a: str, rev_b: str, metric: str | None = None) -> Comparison:
    repo = repo.resolve()
    return compare(read_committed_run(repo, rev_a), read_committed_run(repo, rev_b), metric)


def _num(x: float | None) -> str:
    return "missing" if x is None else f"{x:.4f}"


def _delta(a: float | None, b: float | None) -> str:
    return "" if a is None or b is None else f"{b - a:+.4f}"


def _table(header: list[str], rows: list[list[str]], left: tuple[int, ...] = (0,)) -> list[str]:
    """Aligned columns: numbers to the right, the columns in ``left`` (names, paths) to the left."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _flip_lines(title: str, flips: list[Flip], metric: str, limit: int) -> list[str]:
    lines = [title]
    if not flips:
        return lines + ["  (none)"]
    shown = flips if limit <= 0 else flips[:limit]
    rows = [
        [f"{f.change:+.4f}", f"{f.metric_a:.4f}", f"{f.metric_b:.4f}", str(f.label), f.category or "", f.path]
        for f in shown
    ]
    table = _table(["change", f"{metric} A", f"{metric} B", "label", "category", "path"], rows, left=(5,))
    lines += ["  " + t for t in table]
    if len(shown) < len(flips):
        lines.append(f"  … and {len(flips) - len(shown)} more (--limit 0 lists all)")
    return lines


def titles(c: Comparison) -> tuple[str, str]:
    """The headings of the regressed and the improved queries (console and page)."""
    return (
        f"regressed: {len(c.regressed)} queries correct at CMC@1 in A, wrong in B "
        f"(by the change of {c.metric}, largest drop first)",
        f"improved: {len(c.improved)} queries wrong at CMC@1 in A, correct in B "
        f"(by the change of {c.metric}, largest gain first)",
    )


def format_comparison(c: Comparison, limit: int = 20) -> str:
    lines = [
        f"A: {c.a.label}",
        f"B: {c.b.label}",
        f"{c.n_queries} queries with ground truth in both runs, on the same validation data",
        "",
        "overall",
    ]
    lines += [
        "  " + t
        for t in _table(["metric", "A", "B", "B-A"], [[m, _num(x), _num(y), _delta(x, y)] for m, x, y in c.overall])
    ]
    if c.by_category:
        names = list(dict.fromkeys(m for rows in c.by_category.values() for m, _, _ in rows))
        lines += ["", "by category: B-A"]
        body = []
        for cat, rows in c.by_category.items():
            got = {m: _delta(x, y) or "missing" for m, x, y in rows}
            body.append([cat, *(got.get(m, "missing") for m in names)])
        lines += ["  " + t for t in _table(["category", *names], body)]
    regressed, improved = titles(c)
    lines += ["", *_flip_lines(regressed, c.regressed, c.metric, limit)]
    lines += ["", *_flip_lines(improved, c.improved, c.metric, limit)]
    return "\n".join(lines)
