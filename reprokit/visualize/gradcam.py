"""Grad-CAM for an embedding model: where a query and a retrieved image look alike, to the model.

For a pair (query, retrieved) the score is their similarity as validate ranks it: the negative
euclidean distance between the two embeddings, or their cosine for ``validate.distance: cosine``.
Both images go through the model; at one layer with spatial output [N, C, h, w] (the last
``nn.Conv2d`` unless ``visualize.gradcam_layer`` names another module path) each image's map is
Grad-CAM's (Selvaraju et al. 2017): channel weights = the score's gradient with respect to that
image's activations, averaged over space; map = ReLU(sum of the weighted activations), upsampled
to the image (bilinear) and divided by its maximum (a map with no positive evidence stays zero).

A transformer's layer outputs tokens [N, L, C] instead: the leading class/register tokens are
dropped and the patch tokens laid out on their grid [N, C, h, w] (activations and gradients alike),
then the same formula applies. The grid comes from a module of the model that knows it
(``token_grid(height, width, n_tokens)``, as the ``hf`` backbone does from its patch size), else the
largest square that fits, the rest taken as leading tokens. With ``gradcam_layer`` null a module may
name its own default (``gradcam_default_layer()``, relative to it): for an ``hf`` transformer, the input
norm of its last block, where every patch token still feeds the pooled embedding.

Pairs go through the model in evaluation mode, so every image of a batch is independent
(BatchNorm uses its running statistics): the query repeated once per retrieved item gets one map
per pair, all from a single backward pass per batch of pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from reprokit.core.errors import GradCamError

__all__ = ["GradCamLayer", "resolve_layer", "pair_cams", "similarity", "PAIRS_PER_BATCH"]

PAIRS_PER_BATCH = 16  # pairs per forward/backward pass: bounds the activations held at once
MAX_LISTED = 12  # module names listed in an error line


@dataclass(frozen=True)
class GradCamLayer:
    path: str  # the module path inside the model, e.g. "features.8"
    module: nn.Module


def _listing(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f", … ({len(names)} in all)" if len(names) > MAX_LISTED else "")


def _conv_paths(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and name]


def _default_from_model(model: nn.Module) -> str | None:
    """The layer a module of the model names for itself (``gradcam_default_layer()``), as a full path."""
    for name, module in model.named_modules():
        own = getattr(module, "gradcam_default_layer", None)
        if callable(own):
            sub = own()
            if sub:
                return f"{name}.{sub}" if name else sub
    return None


def resolve_layer(model: nn.Module, path: str | None) -> GradCamLayer:
    """The module ``path`` names in ``model`` (``model.get_submodule``); for None the layer the model
    names for itself (``gradcam_default_layer``), else its last ``nn.Conv2d``."""
    convs = _conv_paths(model)
    if path is None:
        path = _default_from_model(model)
    if path is None:
        if not convs:
            children = [name for name, _ in model.named_modules() if name]
            raise GradCamError(
                f"visualize.gradcam_layer is null and the model ({type(model).__name__}) has no nn.Conv2d layer; "
                f"its modules: {_listing(children)}",
                hint="set visualize.gradcam_layer to a module whose output is [N, C, H, W]",
            )
        path = convs[-1]
    try:
        module = model.get_submodule(path)
    except AttributeError:
        raise GradCamError(
            f"visualize.gradcam_layer {path!r}: no such module in the model ({type(model).__name__}); "
            f"its convolutional layers: {_listing(convs)}",
        ) from None
    return GradCamLayer(path, module)


def similarity(a: torch.Tensor, b: torch.Tensor, distance: str) -> torch.Tensor:
    """Row-wise similarity of embeddings as validate ranks them: -euclidean distance, or cosine."""
    if distance == "cosine":
        return F.cosine_similarity(a, b, dim=1)
    if distance == "euclidean":
        # sqrt of a clamped square: a finite gradient even for two identical embeddings.
        return -((a - b).pow(2).sum(dim=1).clamp_min(1e-12).sqrt())
    raise GradCamError(f"distance must be one of euclidean, cosine; got {distance!r}")


def _forward_capturing(model: nn.Module, layer: GradCamLayer, images: torch.Tensor):
    """(embeddings, the layer's output) of one forward pass with gradients on."""
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        # A transformer block may return a tuple whose first item is the hidden states.
        rest = tuple(output[1:]) if isinstance(output, (tuple, list)) and output else None
        acts = output[0] if rest is not None else output
        if not isinstance(acts, torch.Tensor) or acts.ndim not in (3, 4) or not acts.is_floating_point():
            shape = list(acts.shape) if isinstance(acts, torch.Tensor) else type(acts).__name__
            raise GradCamError(
                f"visualize.gradcam_layer {layer.path!r} ({type(layer.module).__name__}) outputs {shape}; "
                f"Grad-CAM needs a layer with spatial output [N, C, H, W] or tokens [N, L, C] (the model's "
                f"convolutional layers: {_listing(_conv_paths(model))})"
            )
        if not acts.requires_grad:  # a frozen backbone: the map still needs the gradient at this layer
            acts = acts.detach().requires_grad_(True)
        captured.append(acts)
        # A clone goes on: an in-place op after the layer (ReLU(inplace=True)) cannot overwrite what is kept.
        return (acts.clone(), *rest) if rest is not None else acts.clone()

    handle = layer.module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            emb = model(images)
    finally:
        handle.remove()
    if not captured:
        raise GradCamError(f"visualize.gradcam_layer {layer.path!r} is not used by the model's forward pass")
    return emb, captured[-1]


def _token_grid(model: nn.Module, layer: GradCamLayer, size: tuple[int, int], n_tokens: int) -> tuple[int, int, int]:
    """(leading tokens, rows, columns) of the layer's token sequence for images of ``size``."""
    for name, module in model.named_modules():
        knows = getattr(module, "token_grid", None)
        if callable(knows) and (not name or layer.path == name or layer.path.startswith(name + ".")):
            grid = knows(size[0], size[1], n_tokens)
            if grid is not None:
                return grid
    side = math.isqrt(n_tokens)  # reprokit's images are square: the largest square grid that fits
    if side == 0:
        raise GradCamError(f"visualize.gradcam_layer {layer.path!r} outputs {n_tokens} tokens: no grid to map")
    return n_tokens - side * side, side, side


def _as_maps(tokens: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Tokens [N, L, C] -> the patch tokens on their grid [N, C, rows, cols] (leading tokens dropped)."""
    prefix, rows, cols = grid
    patches = tokens[:, prefix : prefix + rows * cols]
    return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], rows, cols)


def _cams(acts: torch.Tensor, grads: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    weights = grads.mean(dim=(2, 3), keepdim=True)  # [N, C, 1, 1]: the spatially averaged gradients
    cam = F.relu((weights * acts).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    cam = torch.where(peak > 1e-12, cam / peak, torch.zeros_like(cam))
    return cam.clamp(0.0, 1.0).detach().cpu().numpy()


def pair_cams(
    model: nn.Module,
    layer: GradCamLayer,
    queries: torch.Tensor,
    others: torch.Tensor,
    distance: str,
    pairs_per_batch: int = PAIRS_PER_BATCH,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grad-CAM maps of pairs ``(queries[i], others[i])`` (both [P, C, H, W]).

    Returns (query maps [P, H, W], other maps [P, H, W], similarities [P]); maps in [0, 1].
    The model is put in evaluation mode (and left so); its parameters receive no gradient.
    """
    if queries.shape != others.shape or queries.ndim != 4:
        raise ValueError(
            f"queries and others must be [P, C, H, W] of one shape; got {list(queries.shape)}, {list(others.shape)}"
        )
    model.eval()
    size = (int(queries.shape[2]), int(queries.shape[3]))
    q_maps, o_maps, sims = [], [], []
    for start in range(0, len(queries), pairs_per_batch):
        q, o = queries[start : start + pairs_per_batch], others[start : start + pairs_per_batch]
        n = len(q)
        emb, acts = _forward_capturing(model, layer, torch.cat([q, o]))
        sim = similarity(emb[:n], emb[n:], distance)
        # Each pair's score depends only on its own two images (eval mode): one backward pass of the
        # sum gives every image the gradient of its own pair's similarity.
        (grads,) = torch.autograd.grad(sim.sum(), acts, allow_unused=True)
        if grads is None:
            raise GradCamError(f"visualize.gradcam_layer {layer.path!r}: no gradient reaches it from the embeddings")
        acts, grads = acts.detach(), grads.detach()
        if acts.ndim == 3:  # tokens [N, L, C]: the patches on their grid
            grid = _token_grid(model, layer, size, int(acts.shape[1]))
            acts, grads = _as_maps(acts, grid), _as_maps(grads, grid)
        cams = _cams(acts, grads, size)
        q_maps.append(cams[:n])
        o_maps.append(cams[n:])
        sims.append(sim.detach().cpu().numpy())
    if not q_maps:
        empty = np.zeros((0, *size), dtype=np.float32)
        return empty, empty.copy(), np.zeros(0, dtype=np.float32)
    return np.concatenate(q_maps), np.concatenate(o_maps), np.concatenate(sims)
