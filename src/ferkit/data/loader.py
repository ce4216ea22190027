"""Batches straight from the uint8 cache: index arrays in, tensors out, no per-item Python work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

# A sampler maps (epoch generator) -> the order of dataset indices for one epoch, [M] int64.
Sampler = Callable[[torch.Generator], torch.Tensor]


def shuffle_sampler(num_samples: int) -> Sampler:
    """Uniform sampling without replacement (a random permutation per epoch)."""
    return lambda generator: torch.randperm(num_samples, generator=generator)


def class_weighted_sampler(labels: np.ndarray, class_weights: np.ndarray) -> Sampler:
    """Sampling with replacement where a sample of class l is drawn with weight class_weights[l].

    Per-class weights w_l give class l a draw probability proportional to n_l * w_l (BBN's
    reversed sampler uses w_l = n_max / n_l**2 so that P(l) is proportional to n_max / n_l).
    """
    sample_weights = torch.as_tensor(np.asarray(class_weights, np.float64)[labels])
    num = len(labels)
    return lambda generator: torch.multinomial(sample_weights, num, True, generator=generator)


class BatchLoader:
    """Iterates one epoch of batches from a cached image array.

    The main stream follows ``sampler`` (uniform shuffle by default); ``streams`` adds further
    index streams of the same length (e.g. BBN's reversed sampler), each delivered as a sub-dict
    ``batch[name] = {"image", "label", "index"}``. Under DDP every rank takes a strided shard of
    the same permutation. Epoch order depends only on ``(seed, epoch)``, so a resumed run sees
    exactly the batches an uninterrupted one would.

    Args:
        images: uint8 ``[N, C, H, W]`` (memory-mapped or in memory).
        labels: ``[N]`` int64 canonical labels.
        batch_size: per-process batch size.
        soft_labels: optional ``[N, K]`` float32 vote distributions.
        sampler: main-stream sampler; ``None`` = sequential (evaluation).
        streams: extra named samplers.
        drop_last: drop the last incomplete batch (training).
        rank, world_size: DDP shard.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        soft_labels: np.ndarray | None = None,
        sampler: Sampler | None = None,
        streams: dict[str, Sampler] | None = None,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.images, self.labels, self.soft_labels = images, np.asarray(labels), soft_labels
        self.batch_size, self.sampler, self.streams = batch_size, sampler, streams or {}
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.seed, self.epoch = 0, 0

    def set_epoch(self, epoch: int, seed: int) -> None:
        self.seed, self.epoch = seed, epoch

    def _order(self, sampler: Sampler | None, salt: int) -> np.ndarray:
        if sampler is None:
            order = torch.arange(len(self.labels))
        else:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch * 101 + salt)
            order = sampler(generator)
        return order[self.rank :: self.world_size].numpy()

    def __len__(self) -> int:
        per_rank = -(-len(self.labels) // self.world_size) if self.world_size > 1 else len(self.labels)
        if self.drop_last:
            return per_rank // self.batch_size
        return -(-per_rank // self.batch_size)

    def _take(self, index: np.ndarray) -> dict[str, Any]:
        # Sorted reads are faster on a memory map; the batch keeps the sampled order.
        order = np.argsort(index, kind="stable")
        rows = np.empty((len(index), *self.images.shape[1:]), np.uint8)
        rows[order] = self.images[index[order]]
        batch = {
            "image": torch.from_numpy(rows),
            "label": torch.from_numpy(self.labels[index].astype(np.int64)),
            "index": torch.from_numpy(index.astype(np.int64)),
        }
        if self.soft_labels is not None:
            batch["soft_label"] = torch.from_numpy(np.asarray(self.soft_labels[index], np.float32))
        return batch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        main = self._order(self.sampler, 0)
        extra = {name: self._order(s, i + 1) for i, (name, s) in enumerate(self.streams.items())}
        for b in range(len(self)):
            index = main[b * self.batch_size : (b + 1) * self.batch_size]
            batch = self._take(index)
            for name, order in extra.items():
                batch[name] = self._take(order[b * self.batch_size : (b + 1) * self.batch_size])
            yield batch
