"""`reprokit compare`'s logic on runs built in memory: flips, their order, the different-data refusals."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

from reprokit.core.errors import CompareError
from reprokit.evaluate.per_query import decode_paths, encode_paths, read_per_query
from reprokit.provenance.committed_run import CommittedRun
from reprokit.provenance.compare import compare, format_comparison
from reprokit.visualize.compare_page import write_compare_page

N_LABELS, VIEWS = 6, 3


def _validation() -> pd.DataFrame:
    rows = [
        {
            "path": f"img/{lab}_{v}.png",
            "label": str(lab),
            "split": "validation",
            "is_query": "True",
            "is_gallery": "True",
            "category": str(lab % 2),
        }
        for lab in range(N_LABELS)
        for v in range(VIEWS)
    ]
    return pd.DataFrame(rows)


def _run(name: str, seed: int, validation: pd.DataFrame | None = None, with_paths: bool = True) -> CommittedRun:
    """A run whose per-query table is random but consistent: cmc@1 is whether the top item shares the label."""
    val = _validation() if validation is None else validation
    rng = np.random.default_rng(seed)
    labels = val["label"].astype(int).to_numpy()
    rows = []
    for i in range(len(val)):
        others = [j for j in range(len(val)) if j != i]
        top = list(rng.permutation(others)[:3])
        hits = [labels[j] == labels[i] for j in top]
        rows.append(
            {
                "item": i,
                "path": val["path"][i],
                "label": labels[i],
                "category": val["category"][i],
                "cmc@1": float(hits[0]),
                "map@5": float(np.mean(hits)),
                "n_gt": VIEWS - 1,
                "retrieved": top,
                "distances": sorted(rng.random(3).round(3).tolist()),
                "retrieved_paths": [val["path"][j] for j in top],
            }
        )
    pq = pd.DataFrame(rows)
    if not with_paths:
        pq = pq.drop(columns="retrieved_paths")
    overall = {"cmc@1": float(pq["cmc@1"].mean()), "map@5": float(pq["map@5"].mean())}
    by_cat = {c: {"cmc@1": float(g["cmc@1"].mean())} for c, g in pq.groupby("category")}
    md5 = {p: f"md5-{p}" for p in val["path"]}
    return CommittedRun(
        rev=name,
        commit=f"{seed:040x}",
        params={"visualize": {"metric": "map@5", "top_k": 3}},
        overall=overall,
        by_category=by_cat,
        per_query=pq,
        validation=val,
        image_md5=md5,
    )


def _expected(a: CommittedRun, b: CommittedRun, metric: str = "map@5"):
    m = a.per_query.merge(b.per_query, on="path", suffixes=("_a", "_b"))
    m["change"] = m[f"{metric}_b"] - m[f"{metric}_a"]
    reg = m[(m["cmc@1_a"] == 1) & (m["cmc@1_b"] == 0)].sort_values(["change", "path"])
    imp = m[(m["cmc@1_a"] == 0) & (m["cmc@1_b"] == 1)].assign(neg=lambda d: -d["change"]).sort_values(["neg", "path"])
    return list(reg["path"]), list(imp["path"])


def test_flips_are_the_queries_that_changed_at_cmc1_ordered_by_the_metric_change():
    a, b = _run("A", 1), _run("B", 2)
    c = compare(a, b)
    regressed, improved = _expected(a, b)
    assert regressed and improved  # the seeds give both kinds
    assert [f.path for f in c.regressed] == regressed
    assert [f.path for f in c.improved] == improved
    assert c.n_queries == N_LABELS * VIEWS and c.metric == "map@5"
    flip = c.regressed[0]
    row_a = a.per_query.set_index("path").loc[flip.path]
    assert [r.path for r in flip.top_a] == row_a["retrieved_paths"]
    assert flip.top_a[0].relevant is True and flip.top_b[0].relevant is False  # correct in A, wrong in B
    assert dict((m, (x, y)) for m, x, y in c.overall)["cmc@1"] == (a.overall["cmc@1"], b.overall["cmc@1"])


def test_the_printout_holds_every_delta_and_every_flip():
    a, b = _run("A", 1), _run("B", 2)
    text = format_comparison(compare(a, b), limit=0)
    for name, value in a.overall.items():
        cells = [name, f"{value:.4f}", f"{b.overall[name]:.4f}", f"{b.overall[name] - value:+.4f}"]
        assert re.search(r"\s+".join(map(re.escape, cells)), text), name
    assert re.search(r"by category: B-A\n\s+category\s+cmc@1\n\s+0\s+[+-]\d\.\d{4}\n\s+1\s+[+-]", text)
    regressed, improved = _expected(a, b)
    assert f"regressed: {len(regressed)} queries" in text and f"improved: {len(improved)} queries" in text
    listed = re.findall(r"^\s+[+-]\d\.\d{4}\s.*\s(img/\S+)$", text, flags=re.M)
    assert listed == regressed + improved
    short = format_comparison(compare(a, b), limit=1)
    assert f"… and {len(regressed) - 1} more (--limit 0 lists all)" in short


def test_an_older_run_without_retrieved_paths_is_mapped_through_its_dataframe():
    a, b = _run("A", 1, with_paths=False), _run("B", 2)
    with_paths = compare(_run("A", 1), b)
    without = compare(a, b)
    assert [[r.path for r in f.top_a] for f in without.regressed] == [
        [r.path for r in f.top_a] for f in with_paths.regressed
    ]


def test_an_older_run_on_the_tuning_split_cannot_be_mapped_and_says_so():
    a, b = _run("A", 1, with_paths=False), _run("B", 2)
    a.params["validate"] = {"split": "tune"}
    with pytest.raises(CompareError, match=r"no retrieved_paths column and it scored the 'tune' split"):
        compare(a, b)


def _refusal(a: CommittedRun, b: CommittedRun) -> str:
    with pytest.raises(CompareError) as err:
        compare(a, b)
    line = err.value.one_line()
    assert "\n" not in line
    return line


def test_other_query_paths_are_refused_naming_how_many_and_one():
    val = _validation()
    val.loc[0, "path"] = "img/other.png"
    line = _refusal(_run("A", 1), _run("B", 2, validation=val))
    assert "different validation data: the validation query paths differ" in line
    assert (
        "1 of A's 18 are not in B's (e.g. 'img/0_0.png')" in line
        and "1 of B's 18 are not in A's (e.g. 'img/other.png')" in line
    )


def test_another_label_or_flag_or_category_is_refused():
    val = _validation()
    val.loc[4, "is_gallery"] = "False"
    line = _refusal(_run("A", 1), _run("B", 1, validation=val))
    assert "'is_gallery' differs in 1 validation rows (e.g. 'img/1_1.png': 'True' in A, 'False' in B)" in line
    val = _validation()
    val.loc[2, "category"] = "7"
    assert "'category' differs in 1 validation rows" in _refusal(_run("A", 1), _run("B", 1, validation=val))
    # "True" and "true" are one flag: not a difference.
    val = _validation()
    val["is_query"] = "true"
    compare(_run("A", 1), _run("B", 1, validation=val))


def test_a_gallery_only_item_missing_from_b_is_refused():
    val = _validation()
    extra = pd.DataFrame(
        [
            {
                "path": "img/gallery.png",
                "label": "0",
                "split": "validation",
                "is_query": "False",
                "is_gallery": "True",
                "category": "0",
            }
        ]
    )
    a, b = _run("A", 1), _run("B", 2)
    a.validation = pd.concat([val, extra], ignore_index=True)
    line = _refusal(a, b)
    assert (
        "validation items (the dataframe's validation rows) differ — 1 of A's 19 are not in B's (e.g. 'img/gallery.png')"
        in line
    )


def test_an_image_with_other_content_is_refused():
    a, b = _run("A", 1), _run("B", 2)
    b.image_md5["img/3_2.png"] = "0123456789abcdef"
    line = _refusal(a, b)
    assert (
        "1 validation images differ in content (e.g. 'img/3_2.png': md5 md5-img/3_2. in A, 0123456789ab in B)" in line
    )


def test_an_unknown_metric_names_the_ones_both_have():
    a, b = _run("A", 1), _run("B", 2)
    with pytest.raises(
        CompareError, match=r"metric 'map@9' is not in the per-query table of A .*; both have: cmc@1, map@5"
    ):
        compare(a, b, metric="map@9")


@pytest.mark.parametrize("paths", [["a b/c d.png", "100%.png", "ü/ñ.jpg"], ["nan", "1"], []])
def test_retrieved_paths_survive_the_round_trip(paths):
    cell = encode_paths(paths)
    assert "\t" not in cell and decode_paths(cell) == paths
    table = "item\tpath\tlabel\tretrieved\tdistances\tretrieved_paths\n0\tq.png\t1\t1 2\t0.1 0.2\t" + cell + "\n"
    assert read_per_query(io.StringIO(table))["retrieved_paths"][0] == paths


def test_the_page_is_self_contained_and_shows_both_top_k(tmp_path):
    a, b = _run("A", 1), _run("B", 2)
    c = compare(a, b)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
    out = write_compare_page(
        tmp_path / "cmp.html",
        label_a="A (1)",
        label_b="B (2)",
        metric=c.metric,
        n_queries=c.n_queries,
        overall=c.overall,
        sections=[("regressed", c.regressed), ("improved", c.improved)],
        read_image=lambda p: None if p == "img/5_2.png" else png,
    )
    page = out.read_text()
    assert page.count('<section class="flip">') == len(c.regressed) + len(c.improved)
    assert not re.search(r"(src|href)=\"(?!data:)", page) and "http" not in page.replace("http-equiv", "")
    assert "<script" not in page
    # Each flip: the query, then k of A and k of B.
    assert page.count("<figure") == sum(1 + len(f.top_a) + len(f.top_b) for f in c.regressed + c.improved)
    assert "data:image/png;base64," in page
