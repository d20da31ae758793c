"""PML's metrics (map@r, r_precision, mrr, ap) in reprokit, against the GEMM and against PML itself.

20,000 random 128-d items (``--size``), every one both query and gallery, 500 labels of 40
items (``--classes``). Each measurement runs in a fresh subprocess, so that its peak resident
memory (``ru_maxrss``, above the RSS after the embeddings were made) is its own:

- ``gemm``: the bare chunked distance GEMM, with the chunking retrieval_metrics uses here;
- ``reprokit``: ``retrieval_metrics(..., extra_metrics=("map@r", "r_precision", "mrr", "ap"))``,
  the OML metrics included, in the same process as ``gemm`` (best of ``--repeats``, interleaved),
  with the default ``extra_metrics`` (map@r, r_precision: a top-K search, K = the largest class),
  and map@r + r_precision alone (no OML metric: PML's work);
- ``pml k=max_bin_count``: pytorch-metric-learning 2.9.0's ``AccuracyCalculator`` for map@r and
  r_precision with ``FaissKNN``, with the k its documentation asks for them (the largest class);
- ``pml whole ranking``: its four metrics need k = the whole ranking, whose unchunked [N, N]
  arrays do not fit in memory at 20,000 items: fed 1,000 queries at a time (the query chunk first
  in the reference, as PML requires), the chunks' means combined.

PML's numbers are printed beside reprokit's: they agree to 1e-6 (PML's MRR is float32). The last
lines are the two ratios issue 27 aims at: reprokit's map@r + r_precision time / PML
k=max_bin_count's (aim <= 0.8), and all four rank metrics / the bare GEMM (aim <= 2.5).

Usage: python benchmarks/bench_pml.py [--size 20000] [--classes 500] [--repeats 3] [--skip-pml]
[--skip-whole] (``--skip-whole``: leave out PML's whole ranking, minutes at 20,000 items)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

GIB = 1024**3
ALL = ("map@r", "r_precision", "mrr", "ap")
PML = {"map@r": "mean_average_precision_at_r", "r_precision": "r_precision",
       "mrr": "mean_reciprocal_rank", "ap": "mean_average_precision"}  # fmt: skip


def _data(n: int, classes: int):
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 128, generator=gen)
    labels = torch.arange(n) % classes
    labels = labels[torch.randperm(n, generator=gen)]
    return x, labels


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def measure_reprokit(n: int, classes: int, repeats: int, budget_mb: float) -> dict:
    import torch

    from reprokit.evaluate.knn import query_chunk_rows
    from reprokit.evaluate.metrics import retrieval_metrics
    from reprokit.evaluate.ranks import GroundTruthRanks

    x, labels = _data(n, classes)
    mask = torch.ones(n, dtype=torch.bool)
    before = _rss()
    rows = query_chunk_rows(n, budget_mb, 4, GroundTruthRanks.bytes_per_element)

    def gemm() -> None:
        sq = (x * x).sum(dim=1)
        block = torch.empty(min(rows, n), n)
        for start in range(0, n, rows):
            out = block[: min(start + rows, n) - start]
            torch.addmm(sq[None, :], x[start : start + len(out)], x.T, beta=1, alpha=-2, out=out)
            out.add_(sq[start : start + len(out), None])

    t_gemm = t_ours = t_default = t_two = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        two = retrieval_metrics(x, labels, mask, mask, memory_budget_mb=budget_mb, extra_metrics=ALL[:2],
                                cmc_top_k=(), precision_top_k=(), map_top_k=())  # fmt: skip
        t_two = min(t_two, time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = retrieval_metrics(x, labels, mask, mask, memory_budget_mb=budget_mb, extra_metrics=ALL)
        t_ours = min(t_ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        retrieval_metrics(x, labels, mask, mask, memory_budget_mb=budget_mb, extra_metrics=ALL[:2])
        t_default = min(t_default, time.perf_counter() - t0)
        t0 = time.perf_counter()
        gemm()
        t_gemm = min(t_gemm, time.perf_counter() - t0)
    assert all(two.overall[m] == res.overall[m] for m in ALL[:2])  # the top-K path and the whole ranking
    return {"gemm_s": t_gemm, "reprokit_s": t_ours, "default_s": t_default, "two_s": t_two,
            "peak_above_gib": (_peak() - before) / GIB, "rows": rows, "metrics": {m: res.overall[m] for m in ALL}}  # fmt: skip


def measure_pml(n: int, classes: int, whole: bool, chunk: int = 1000) -> dict:
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import FaissKNN

    x, labels = _data(n, classes)
    before = _rss()
    names = ALL if whole else ("map@r", "r_precision")
    calc = AccuracyCalculator(include=tuple(PML[m] for m in names), k=None if whole else "max_bin_count",
                              device=torch.device("cpu"), knn_func=FaissKNN())  # fmt: skip
    t0 = time.perf_counter()
    if not whole:
        got = calc.get_accuracy(x, labels)
        values = {m: got[PML[m]] for m in names}
    else:  # query chunks, each first in the reference; weights: the chunk's queries with ground truth
        counts = torch.bincount(labels)
        sums, total = dict.fromkeys(names, 0.0), 0
        for start in range(0, n, chunk):
            order = torch.cat([torch.arange(start, min(start + chunk, n)), torch.arange(0, start),
                               torch.arange(min(start + chunk, n), n)])  # fmt: skip
            q = order[: min(chunk, n - start)]
            got = calc.get_accuracy(x[q], labels[q], x[order], labels[order], ref_includes_query=True)
            weight = int((counts[labels[q]] > 1).sum())
            for m in names:
                sums[m] += got[PML[m]] * weight
            total += weight
        values = {m: sums[m] / total for m in names}
    return {"pml_s": time.perf_counter() - t0, "peak_above_gib": (_peak() - before) / GIB, "metrics": values}


def _child(kind: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--size", str(args.size), "--classes", str(args.classes),
           "--repeats", str(args.repeats), "--budget-mb", str(args.budget_mb)]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--classes", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget-mb", type=float, default=1024)
    parser.add_argument("--skip-pml", action="store_true")
    parser.add_argument("--skip-whole", action="store_true", help="leave out PML's whole ranking (minutes)")
    parser.add_argument("--child", choices=["reprokit", "pml-bins", "pml-whole"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "reprokit":
        print(json.dumps(measure_reprokit(args.size, args.classes, args.repeats, args.budget_mb)))
        return
    if args.child:
        print(json.dumps(measure_pml(args.size, args.classes, whole=args.child == "pml-whole")))
        return

    print(f"cpu cores: {os.cpu_count()}, load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{args.size} x 128, {args.classes} classes, every item query and gallery, budget {args.budget_mb:g} MB")
    r = _child("reprokit", args)
    print(f"{'':28s} {'time s':>8} {'x GEMM':>7} {'peak RSS GiB':>13}  " + "  ".join(f"{m:>11}" for m in ALL))
    print(f"{'bare distance GEMM':28s} {r['gemm_s']:8.2f} {1:7.2f} {'':>13}")
    line = "  ".join(f"{r['metrics'][m]:11.6f}" for m in ALL)
    print(f"{'reprokit (all 8 metrics)':28s} {r['reprokit_s']:8.2f} {r['reprokit_s'] / r['gemm_s']:7.2f} "
          f"{r['peak_above_gib']:13.3f}  {line}", flush=True)  # fmt: skip
    print(f"{'reprokit (6: map@r, r_prec.)':28s} {r['default_s']:8.2f} {r['default_s'] / r['gemm_s']:7.2f}")
    print(f"{'reprokit map@r, r_prec. only':28s} {r['two_s']:8.2f} {r['two_s'] / r['gemm_s']:7.2f}")
    bins = None
    if not args.skip_pml:
        try:
            import pytorch_metric_learning  # noqa: F401
        except ImportError:
            print("pytorch-metric-learning is not installed (pip install -e '.[bench]'): PML rows skipped")
        else:
            kinds = (("pml-bins", "PML k=max_bin_count"), ("pml-whole", "PML whole ranking, chunked"))
            for kind, title in kinds[: 1 if args.skip_whole else 2]:
                p = _child(kind, args)
                bins = p["pml_s"] if kind == "pml-bins" else bins
                line = "  ".join(f"{p['metrics'][m]:11.6f}" if m in p["metrics"] else f"{'-':>11}" for m in ALL)
                print(f"{title:28s} {p['pml_s']:8.2f} {p['pml_s'] / r['gemm_s']:7.2f} {p['peak_above_gib']:13.3f}  "
                      f"{line}", flush=True)  # fmt: skip
    if bins is not None:
        print(
            f"ratio reprokit map@r + r_precision / PML k=max_bin_count + FaissKNN: {r['two_s'] / bins:.2f} (aim <= 0.8)"
        )
    print(
        f"ratio reprokit all four rank metrics (+ the OML ones) / bare GEMM: {r['reprokit_s'] / r['gemm_s']:.2f} "
        "(aim <= 2.5)"
    )
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
