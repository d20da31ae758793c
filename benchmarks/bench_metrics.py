"""Benchmark of reprokit.evaluate.metrics.retrieval_metrics against its physical limit.

For each size N (all items both query and gallery, D-dimensional random embeddings, about 10
items per label, 7 categories) it times, in one process:

- ``matmul``: the plain chunked distance-matrix computation, with the same chunking as
  retrieval_metrics (one ``addmm`` per chunk for ``||b||^2 - 2ab`` into a reused block, plus the
  ``||a||^2`` row term) and nothing else;
- ``retrieval_metrics``: the whole call (search, metrics, per-category averages, per-query table);

and prints their ratio (wall time, and process CPU time, which other processes disturb less). Each size runs in a fresh subprocess so that its peak resident memory
(``ru_maxrss``) is its own; the table shows it above the RSS measured right after the embeddings
were created (torch imported, embeddings allocated).

Usage:
    python benchmarks/bench_metrics.py                   # 20,000 and 100,000 items
    python benchmarks/bench_metrics.py --size 200000     # one size (e.g. the memory claim)
    python benchmarks/bench_metrics.py --size 20000 --size 100000 --size 200000
Options: --dim 128, --budget-mb 1024, --repeats N (best of, for both timings, interleaved),
--skip-matmul (memory runs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

GIB = 1024**3


def _measure(n: int, dim: int, budget_mb: float, repeats: int, skip_matmul: bool) -> dict:
    import resource

    import psutil
    import torch

    from reprokit.evaluate.knn import query_chunk_rows
    from reprokit.evaluate.metrics import retrieval_metrics

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=gen)
    labels = torch.randint(0, max(1, n // 10), (n,), generator=gen)
    mask = torch.ones(n, dtype=torch.bool)
    categories = (labels % 7).tolist()
    rss_before = psutil.Process().memory_info().rss
    rows = query_chunk_rows(n, budget_mb)

    def matmul() -> None:
        # The fastest plain form: one preallocated block, addmm writing into it, row norms added.
        sq = (x * x).sum(dim=1)
        block = torch.empty(min(rows, n), n)
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            out = block[: stop - start]
            torch.addmm(sq[None, :], x[start:stop], x.T, beta=1, alpha=-2, out=out)
            out.add_(sq[start:stop, None])

    def metrics() -> object:
        return retrieval_metrics(x, labels, mask, mask, categories=categories, memory_budget_mb=budget_mb)

    # Interleaved, best of `repeats` each: a burst of load from other processes hits both alike.
    # Process CPU time is reported too: it is less sensitive to other processes than wall time.
    t_metrics = t_matmul = c_metrics = c_matmul = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        res = metrics()
        t_metrics, c_metrics = min(t_metrics, time.perf_counter() - t0), min(c_metrics, time.process_time() - c0)
        if not skip_matmul:
            t0, c0 = time.perf_counter(), time.process_time()
            matmul()
            t_matmul, c_matmul = min(t_matmul, time.perf_counter() - t0), min(c_matmul, time.process_time() - c0)
    if skip_matmul:
        t_matmul = c_matmul = float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {
        "n": n,
        "dim": dim,
        "rows_per_chunk": rows,
        "threads": torch.get_num_threads(),
        "matmul_s": t_matmul,
        "metrics_s": t_metrics,
        "ratio": t_metrics / t_matmul,
        "cpu_ratio": c_metrics / c_matmul,
        "embeddings_gib": x.numel() * x.element_size() / GIB,
        "rss_before_gib": rss_before / GIB,
        "peak_rss_gib": peak / GIB,
        "peak_above_gib": (peak - rss_before) / GIB,
        "cmc@1": res.overall["cmc@1"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, action="append", help="number of items (repeatable)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--budget-mb", type=float, default=1024)
    parser.add_argument("--repeats", type=int, help="best of (default 3; 1 above 50,000 items)")
    parser.add_argument("--skip-matmul", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = args.size or [20_000, 100_000]

    if args.child:  # one size, measured in this (fresh) process; JSON on stdout
        print(json.dumps(_measure(sizes[0], args.dim, args.budget_mb, args.repeats or 3, args.skip_matmul)))
        return

    header = (
        f"{'items':>8} {'dim':>4} {'rows/chunk':>10} {'matmul s':>9} {'metrics s':>10} {'ratio':>6} {'cpu ratio':>9} "
        f"{'emb GiB':>8} {'RSS before':>10} {'peak RSS':>9} {'peak-before':>11}"
    )
    print(f"cpu cores: {os.cpu_count()}, load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(header)
    print("-" * len(header))
    for n in sizes:
        cmd = [sys.executable, __file__, "--child", "--size", str(n), "--dim", str(args.dim)]
        repeats = args.repeats or (3 if n <= 50_000 else 1)
        cmd += ["--budget-mb", str(args.budget_mb), "--repeats", str(repeats)]
        cmd += ["--skip-matmul"] if args.skip_matmul else []
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{r['n']:>8} {r['dim']:>4} {r['rows_per_chunk']:>10} {r['matmul_s']:>9.3f} {r['metrics_s']:>10.3f} "
            f"{r['ratio']:>6.2f} {r['cpu_ratio']:>9.2f} {r['embeddings_gib']:>8.3f} {r['rss_before_gib']:>10.3f} "
            f"{r['peak_rss_gib']:>9.3f} {r['peak_above_gib']:>11.3f}",
            flush=True,
        )
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
