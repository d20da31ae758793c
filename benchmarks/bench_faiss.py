"""reprokit's exact search against FAISS's, side by side in one process.

N random 128-d items, every one both query and gallery, N/10 labels. Interleaved, ``--repeats``
times each (default 5), with medians:

- ``faiss``: ``faiss.IndexFlatL2`` built on the items and searched for k = 6 (the item itself
  plus 5 neighbours), FAISS's own threads (one per core);
- ``reprokit``: ``retrieval_metrics`` with the default metrics (CMC@1, CMC@5, Precision@5,
  MAP@5: k = 5 after dropping the item itself), search *and* metrics and the per-query table.

It prints both medians, their ratio and the median of the per-repeat ratios (each repeat runs
both back to back, so a burst of load from other processes hits both alike), and the load
average before and after. It also checks that both find the same nearest neighbours.

The large-gallery case (``--queries Q``, issue 27): a gallery of ``--size`` items (e.g.
1,000,000) searched by its first ``Q`` items (e.g. 10,000), each run in a fresh process so that
its peak resident memory is its own: ``retrieval_metrics`` with every default metric of the
validate stage (``extra_metrics`` map@r, r_precision) against ``IndexFlatL2`` searching the same
queries for k = 6, ``--repeats`` times each (default 3), interleaved; it prints the medians, their
ratio and each side's peak RSS above the process's RSS before the embeddings were made, against
the aim: the embeddings + 1 GiB.

Usage: python benchmarks/bench_faiss.py [--size 50000] [--repeats 5] [--threads N] [--tile COLUMNS]
       python benchmarks/bench_faiss.py --size 1000000 --queries 10000 --repeats 3 --threads 2
(``--threads``: torch's and FAISS's threads, default one per core; one thread each is far less
disturbed by other processes. ``--tile`` overrides reprokit.evaluate.knn.TILE_COLUMNS, 0 = whole
rows: for tuning).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

GIB = 1024**3


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _gallery_child(kind: str, n: int, dim: int, n_queries: int, threads: int | None) -> dict:
    """One timed run of the large-gallery case in this (fresh) process: time and peak RSS growth."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    before = _rss()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=gen)
    labels = torch.randint(0, max(1, n // 10), (n,), generator=gen)
    is_query = torch.zeros(n, dtype=torch.bool)
    is_query[:n_queries] = True
    if kind == "faiss":
        import faiss

        if threads:
            faiss.omp_set_num_threads(threads)
        t0 = time.perf_counter()
        index = faiss.IndexFlatL2(dim)
        index.add(x.numpy())
        _, found = index.search(x[:n_queries].numpy(), 6)
        seconds = time.perf_counter() - t0
        extra = {"nearest": found[:, 1:6].tolist()[:200]}
    else:
        from reprokit.evaluate.metrics import retrieval_metrics

        t0 = time.perf_counter()
        res = retrieval_metrics(x, labels, is_query, torch.ones(n, dtype=torch.bool),
                                extra_metrics=("map@r", "r_precision"))  # fmt: skip
        seconds = time.perf_counter() - t0
        extra = {"nearest": res.retrieved[:200].tolist(), "overall": res.overall}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"s": seconds, "peak_above_gib": (peak - before) / GIB, "embeddings_gib": x.numel() * 4 / GIB, **extra}


def gallery_case(args) -> None:
    def child(kind: str) -> dict:
        cmd = [sys.executable, __file__, "--child", kind, "--size", str(args.size), "--dim", str(args.dim),
               "--queries", str(args.queries)] + (["--threads", str(args.threads)] if args.threads else [])  # fmt: skip
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])

    print(f"cpu cores: {os.cpu_count()}, threads: {args.threads or 'default'}, "
          f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")  # fmt: skip
    print(f"gallery {args.size} x {args.dim}, {args.queries} queries (each a gallery item, never retrieved for itself)")
    runs: dict[str, list[dict]] = {"faiss": [], "reprokit": []}
    for i in range(args.repeats):
        for kind in ("faiss", "reprokit"):
            runs[kind].append(child(kind))
        f, o = runs["faiss"][-1], runs["reprokit"][-1]
        print(f"  repeat {i + 1}: faiss {f['s']:.2f} s (peak +{f['peak_above_gib']:.2f} GiB), reprokit {o['s']:.2f} s "
              f"(peak +{o['peak_above_gib']:.2f} GiB), ratio {o['s'] / f['s']:.2f}", flush=True)  # fmt: skip
    mf = statistics.median(r["s"] for r in runs["faiss"])
    mo = statistics.median(r["s"] for r in runs["reprokit"])
    emb = runs["reprokit"][0]["embeddings_gib"]
    peak = max(r["peak_above_gib"] for r in runs["reprokit"])
    same = statistics.mean(a == b for fa, ob in zip(runs["faiss"][0]["nearest"], runs["reprokit"][0]["nearest"])
                           for a, b in zip(fa, ob))  # fmt: skip
    print(f"median: faiss IndexFlatL2 k=6 {mf:.2f} s, reprokit retrieval_metrics (default metrics + map@r, "
          f"r_precision) {mo:.2f} s; ratio reprokit/faiss {mo / mf:.3f} (aim <= 1.0)")  # fmt: skip
    print(f"reprokit peak RSS above start: {peak:.2f} GiB; embeddings {emb:.2f} GiB + 1 GiB = {emb + 1:.2f} GiB "
          f"({'within' if peak <= emb + 1 else 'OVER'} the aim)")  # fmt: skip
    print(f"reprokit overall: {runs['reprokit'][0]['overall']}")
    print(f"same 5 nearest neighbours as faiss (first 200 queries): {same:.4%} of slots")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch and FAISS threads (default: one per core)")
    parser.add_argument("--tile", type=int, help="gallery columns per tile (0 = whole rows)")
    parser.add_argument("--queries", type=int, help="the large-gallery case: this many queries against --size items")
    parser.add_argument("--child", choices=["faiss", "reprokit"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_gallery_child(args.child, args.size, args.dim, args.queries, args.threads)))
        return
    if args.queries:
        if args.repeats == 5:
            args.repeats = 3
        gallery_case(args)
        return

    import faiss
    import torch

    from reprokit.evaluate import knn
    from reprokit.evaluate.metrics import retrieval_metrics

    if args.tile is not None:
        knn.TILE_COLUMNS = args.tile or None
    if args.threads:
        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    n = args.size
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, args.dim, generator=gen)
    labels = torch.randint(0, max(1, n // 10), (n,), generator=gen)
    mask = torch.ones(n, dtype=torch.bool)
    xn = x.numpy()
    print(
        f"cpu cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, faiss threads: "
        f"{faiss.omp_get_max_threads()}, load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    print(f"{n} x {args.dim}, tile columns: {knn.TILE_COLUMNS}")

    def run_faiss():
        index = faiss.IndexFlatL2(args.dim)
        index.add(xn)
        return index.search(xn, 6)

    def run_reprokit():
        return retrieval_metrics(x, labels, mask, mask)

    t_faiss, t_ours = [], []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        _, found = run_faiss()
        t_faiss.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = run_reprokit()
        t_ours.append(time.perf_counter() - t0)
        print(
            f"  repeat {i + 1}: faiss {t_faiss[-1]:.2f} s, reprokit {t_ours[-1]:.2f} s, "
            f"ratio {t_ours[-1] / t_faiss[-1]:.2f}",
            flush=True,
        )
    # FAISS lists the item itself first (distance 0), unless an exact duplicate ties with it.
    same = (torch.from_numpy(found[:, 1:6]) == res.retrieved).float().mean().item()
    mf, mo = statistics.median(t_faiss), statistics.median(t_ours)
    paired = statistics.median(o / f for o, f in zip(t_ours, t_faiss))
    print(f"median: faiss IndexFlatL2 k=6 {mf:.2f} s, reprokit retrieval_metrics {mo:.2f} s")
    print(f"ratio reprokit/faiss: {mo / mf:.3f} of medians, {paired:.3f} median of paired (target <= 1.0)")
    print(f"same 5 nearest neighbours as faiss: {same:.4%} of slots")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
