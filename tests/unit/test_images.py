"""Images decoded per batch (reprokit.data.images.ImageDataset) against the in-memory decoding.

A small OML dataset is written for real (PNGs of several sizes and modes, bounding boxes on some
rows, a CSV read by the dataframe checker); the reference is ``load_images``, which decodes the
whole split into one tensor as training and validation did before.
"""

import csv
import pickle
import random

import numpy as np
import pytest
import torch
from PIL import Image

from reprokit.data.dataframe import load_dataframe, resolve_image_paths
from reprokit.data.images import ImageDataset, RawPixels, WorkerSeeder, image_loader, load_images
from reprokit.data.sampler import LabelBalancedBatchSampler
from reprokit.evaluate.scoring import embed

N_LABELS, PER_LABEL = 6, 4


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    """(checked dataframe, image paths): 24 PNGs (L, RGB, palette; 11 to 20 px), a box on every third row."""
    root = tmp_path_factory.mktemp("images") / "dataset"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = [["label", "path", "split", "is_query", "is_gallery", "x_1", "x_2", "y_1", "y_2"]]
    for i in range(N_LABELS * PER_LABEL):
        h, w = int(rng.integers(11, 21)), int(rng.integers(11, 21))
        kind = ("L", "RGB", "P")[i % 3]
        pixels = rng.integers(0, 256, (h, w) if kind != "RGB" else (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(pixels, mode="L" if kind == "P" else kind)
        (img.convert("P") if kind == "P" else img).save(root / "images" / f"{i}.png")
        box = [1 + i % 3, w - 1, 2, h - i % 2] if i % 3 == 0 else [""] * 4  # (x_1, x_2, y_1, y_2)
        rows.append([str(i // PER_LABEL), f"images/{i}.png", "train", "", "", *map(str, box)])
    csv_path = root / "df.csv"
    with open(csv_path, "w", newline="") as fh:
        csv.writer(fh).writerows(
            rows + [["99", f"images/{i}.png", "validation", "True", "True"] + [""] * 4 for i in (0, 1)]
        )
    df = load_dataframe(csv_path, root=root)
    df = df[df["split"] == "train"].reset_index(drop=True)
    return df, resolve_image_paths(df, root)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_batches_decode_to_exactly_the_in_memory_tensors_boxes_included(frame, mode):
    df, paths = frame
    assert df["x_1"].notna().sum() == N_LABELS * PER_LABEL // 3  # boxed and unboxed rows
    reference = load_images(df, paths, size=12, mode=mode)
    dataset = ImageDataset.from_frame(df, paths, size=12, mode=mode)
    order = random.Random(0).sample(range(len(df)), len(df))
    batches = [order[:7], order[7:8], order[8:]]
    seen = []
    for images, labels, index in image_loader(dataset, batches, num_workers=0, seeder=WorkerSeeder(0)):
        assert index.tolist() == batches[len(seen)]
        assert images.dtype == torch.float32 and torch.equal(images, reference[index])
        assert labels.tolist() == df["label"].to_numpy()[index.numpy()].tolist()
        seen.append(index)
    image, label, idx = dataset[5]  # single items too
    assert torch.equal(image, reference[5]) and int(label) == df["label"][5] and idx == 5


def test_workers_give_the_same_batches_as_the_main_process_over_epochs(frame):
    df, paths = frame
    dataset = ImageDataset.from_frame(df, paths, size=10, mode="RGB")

    def epochs(num_workers):
        sampler = LabelBalancedBatchSampler(dataset.labels.numpy(), n_labels=2, n_instances=3, seed=3)
        loader = image_loader(dataset, sampler, num_workers, WorkerSeeder(3), persistent=True)
        out = []
        for epoch in range(2):
            sampler.set_epoch(epoch)
            out.append([(x, y, i) for x, y, i in loader])
        return out

    main, workers = epochs(0), epochs(2)
    assert [len(e) for e in main] == [N_LABELS // 2] * 2
    assert [[i.tolist() for *_, i in e] for e in main] != [[i.tolist() for *_, i in main[0]]] * 2  # epochs differ
    for e_main, e_workers in zip(main, workers):
        for (x0, y0, i0), (x2, y2, i2) in zip(e_main, e_workers, strict=True):
            assert torch.equal(i0, i2) and torch.equal(y0, y2) and torch.equal(x0, x2)


def test_a_followed_epoch_is_read_when_workers_prefetch(frame):
    """Workers prefetch as soon as the iterator exists (a resumed Lightning run: before any epoch
    hook); a sampler following the trainer's epoch plans that epoch, not the one set before."""
    df, paths = frame
    dataset = ImageDataset.from_frame(df, paths, size=8)
    expected = LabelBalancedBatchSampler(dataset.labels.numpy(), 2, 2, seed=1)
    expected.set_epoch(4)
    sampler = LabelBalancedBatchSampler(dataset.labels.numpy(), 2, 2, seed=1)
    sampler.follow(lambda: 4)
    got = [i.tolist() for *_, i in image_loader(dataset, sampler, 2, WorkerSeeder(1))]
    assert got == list(expected) and sampler.epoch == 4


def test_the_dataset_holds_no_pixels(frame):
    df, paths = frame
    small = ImageDataset.from_frame(df, paths, size=8, mode="RGB")
    large = ImageDataset.from_frame(df, paths, size=256, mode="RGB")
    arrays = [v for v in vars(large).values() if isinstance(v, (np.ndarray, torch.Tensor))]
    assert sum(a.size if isinstance(a, np.ndarray) else a.numel() for a in arrays) <= 5 * len(df)  # labels + boxes
    # What a worker receives does not depend on the image size (256² x 3 x 24 floats would be 18 MB).
    assert abs(len(pickle.dumps(large)) - len(pickle.dumps(small))) < 8 and len(pickle.dumps(large)) < 200 * len(df)


class _Draws(torch.utils.data.Dataset):
    """Each batch: one draw from torch, numpy and random in whichever process decodes it."""

    def __len__(self):
        return 8

    def __getitems__(self, idxs):
        return [(torch.rand(1).item(), float(np.random.random()), random.random(), torch.as_tensor(idxs))]


def test_workers_are_seeded_from_the_seed_alone():
    def draws(seed, global_seed):
        torch.manual_seed(global_seed)
        batches = [[0, 1], [2, 3], [4, 5], [6, 7]]
        return [tuple(b[:3]) for b in image_loader(_Draws(), batches, 2, WorkerSeeder(seed))]

    first = draws(5, global_seed=0)
    assert draws(5, global_seed=123) == first  # the global RNG's state does not matter
    assert len(set(first)) == 4  # the two workers (and their successive draws) differ
    assert draws(6, global_seed=0) != first
    assert draws(5, global_seed=0) != [
        tuple(b[:3]) for b in image_loader(_Draws(), [[0, 1]] * 4, 2, WorkerSeeder(5, rank=1))
    ]


def test_raw_pixels_are_exact_within_the_budget_and_bounded_beyond_it(frame):
    df, paths = frame
    reference = load_images(df, paths, size=12, mode="RGB")
    dataset = ImageDataset.from_frame(df, paths, size=12, mode="RGB")
    n = len(df)
    exact = RawPixels(n, 3, 12, max_bytes=n * 3 * 12 * 12 * 4)
    small = RawPixels(n, 3, 12, max_bytes=n * 3 * 5 * 5 * 4 + 100)  # room for 5x5 images only
    assert exact.side == 12 and small.side == 5
    assert small.matrix.numel() * 4 <= n * 3 * 5 * 5 * 4 + 100
    embeddings = embed(
        torch.nn.Flatten(), dataset, batch_size=5, show_progress=False, num_workers=2, seed=0, pixels=exact
    )
    assert torch.equal(embeddings, reference.flatten(1))  # the same batches, in order, through the model
    for start in range(0, n, 5):
        index = torch.arange(start, min(start + 5, n))
        small.add(index, dataset.decode(index.tolist()))
    assert exact.missing() == [] and small.missing() == []
    assert torch.equal(exact.matrix, reference.flatten(1))
    pooled = torch.nn.functional.adaptive_avg_pool2d(reference, 5).flatten(1)
    torch.testing.assert_close(small.matrix, pooled, rtol=0, atol=1e-6)


def test_embedding_a_dataset_equals_embedding_the_in_memory_tensor(frame):
    df, paths = frame
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(8)).eval()
    reference = load_images(df, paths, size=12, mode="L")
    expected = embed(model, reference, batch_size=7, show_progress=False)
    dataset = ImageDataset.from_frame(df, paths, size=12, mode="L")
    for workers in (0, 2):
        got = embed(model, dataset, batch_size=7, show_progress=False, num_workers=workers, seed=1)
        assert torch.equal(got, expected)
        assert not got.requires_grad  # no autograd graph holding every batch's activations
