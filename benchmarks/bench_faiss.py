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

Usage: python benchmarks/bench_faiss.py [--size 50000] [--repeats 5] [--threads N] [--tile COLUMNS]
(``--threads``: torch's and FAISS's threads, default one per core; one thread each is far less
disturbed by other processes. ``--tile`` overrides reprokit.evaluate.knn.TILE_COLUMNS, 0 = whole
rows: for tuning).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch and FAISS threads (default: one per core)")
    parser.add_argument("--tile", type=int, help="gallery columns per tile (0 = whole rows)")
    args = parser.parse_args()

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
