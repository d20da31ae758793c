"""The query search split across DDP ranks against one process, on one machine (issue 27).

A validation set of ``--size`` random 128-d items (default 100,000), every one a gallery item and
``--query-share`` of them queries (default 0.1), ``--classes`` labels, with validate's default
metrics (CMC@1, CMC@5, Precision@5, MAP@5, map@r, r_precision):

- one process: ``retrieval_metrics`` with every core's thread;
- ``--ranks`` processes (default 2) under ``torch.distributed`` (gloo, CPU), each with
  cores / ranks threads, each holding every embedding and searching its share of the queries
  (``retrieval_metrics(..., distributed=True)``); the per-query results are gathered.

Each side runs in fresh processes; it prints the wall time (from the moment every rank holds the
embeddings to the gathered result), each process's peak RSS above its RSS before the embeddings
were made, their ratio, and checks that both give the same metrics and per-query lists.

Usage: python benchmarks/bench_ddp.py [--size 100000] [--query-share 0.1] [--ranks 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time

GIB = 1024**3


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _data(n: int, classes: int, query_share: float):
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 128, generator=gen)
    labels = torch.randint(0, classes, (n,), generator=gen)
    is_query = torch.rand(n, generator=gen) < query_share
    return x, labels, is_query, torch.ones(n, dtype=torch.bool)


def _run(args, rank: int, world: int, port: int) -> dict:
    import torch
    import torch.distributed as dist

    from reprokit.evaluate.metrics import retrieval_metrics

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    before = _rss()
    x, labels, is_query, is_gallery = _data(args.size, args.classes, args.query_share)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
        dist.barrier()  # every rank holds the embeddings (as after validate's gather)
    t0 = time.perf_counter()
    res = retrieval_metrics(x, labels, is_query, is_gallery, extra_metrics=("map@r", "r_precision"),
                            distributed=world > 1)  # fmt: skip
    seconds = time.perf_counter() - t0
    if world > 1:
        dist.destroy_process_group()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    digest = hash((tuple(res.retrieved.flatten().tolist()), res.per_query.to_csv()))
    return {"s": seconds, "peak_above_gib": (peak - before) / GIB, "overall": res.overall, "digest": digest,
            "embeddings_gib": x.numel() * 4 / GIB}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args, world: int) -> list[dict]:
    port = _free_port()
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the digests compare across processes
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                str(rank),
                "--world",
                str(world),
                "--port",
                str(port),
                "--size",
                str(args.size),
                "--classes",
                str(args.classes),
                "--query-share",
                str(args.query_share),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for rank in range(world)
    ]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a rank failed: exit codes {[p.returncode for p in procs]}")
    return [json.loads(o.strip().splitlines()[-1]) for o in outs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=10_000)
    parser.add_argument("--query-share", type=float, default=0.1)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--world", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(_run(args, args.child, args.world, args.port)))
        return

    print(f"cpu cores: {os.cpu_count()}, load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{args.size} x 128, {args.classes} classes, {args.query_share:.0%} queries, every item a gallery item")
    one, split = [], []
    for i in range(args.repeats):
        one.append(_launch(args, 1)[0])
        split.append(_launch(args, args.ranks))
        wall = max(r["s"] for r in split[-1])
        per_rank = ", ".join(f"{r['s']:.2f}" for r in split[-1])
        print(f"  repeat {i + 1}: one process {one[-1]['s']:.2f} s, {args.ranks} ranks {wall:.2f} s "
              f"(each rank: {per_rank})", flush=True)  # fmt: skip
    t_one = statistics.median(r["s"] for r in one)
    t_split = statistics.median(max(r["s"] for r in rs) for rs in split)
    print(f"median wall time: one process {t_one:.2f} s, {args.ranks} ranks {t_split:.2f} s, "
          f"ratio {t_split / t_one:.2f}")  # fmt: skip
    peaks = ", ".join(f"{r['peak_above_gib']:.2f}" for r in split[0])
    print(f"peak RSS above start: one process {one[0]['peak_above_gib']:.2f} GiB; per rank {peaks} GiB "
          f"(embeddings {one[0]['embeddings_gib']:.2f} GiB)")  # fmt: skip
    same = all(r["digest"] == one[0]["digest"] and r["overall"] == one[0]["overall"] for r in split[0])
    print(f"same metrics and per-query table on every rank as one process: {same}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
