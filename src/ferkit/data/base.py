"""The dataset contract every ferkit dataset follows.

A dataset takes ``(root, split, transform=None)``, maps raw labels into the canonical order of
:mod:`ferkit.data.labels`, exposes ``class_names``, ``labels`` and ``class_counts``, and returns
``{"image": uint8 [C, H, W], "label": int, "index": int}`` items (``"soft_label"`` too when the
dataset has vote distributions). Training does not go through ``__getitem__``: the engine decodes
each image once into a memory-mapped cache (:mod:`ferkit.data.cache`) and augments whole batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ferkit.data.fingerprint import fingerprint_files
from ferkit.errors import DatasetError


def decode_image(path: Path | str, channels: int = 3) -> np.ndarray:
    """Decode an image file to uint8 ``[H, W, channels]`` (channels 1 = grayscale, 3 = RGB).

    Raises:
        DatasetError: the file is missing or not a readable image (the message names the file).
    """
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            array = np.asarray(img, dtype=np.uint8)
    except FileNotFoundError as err:
        raise DatasetError(f"image file not found: {path}") from err
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DatasetError(f"cannot read image {path}: {err}. Re-download or remove it.") from err
    return array[:, :, None] if channels == 1 else array


class FERDataset(Dataset):
    """Base class: image files (or generated images) with canonical integer labels.

    Subclasses parse their published layout and call ``super().__init__`` with the files found.

    Args:
        paths: one image path per sample (may be empty strings for generated datasets that
            override :meth:`load_image`).
        labels: canonical class index per sample, ``[N]``.
        class_names: canonical class names, in index order.
        soft_labels: optional vote distribution per sample, ``[N, K]``, rows sum to 1.
        channels: 1 for grayscale sources (FERPlus), 3 for colour.
        transform: optional callable applied to the uint8 ``[C, H, W]`` tensor in ``__getitem__``.
        name: human-readable dataset + split name, used in messages and cache keys.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels: Sequence[int] | np.ndarray,
        class_names: Sequence[str],
        soft_labels: np.ndarray | None = None,
        channels: int = 3,
        transform: Callable[[torch.Tensor], Any] | None = None,
        name: str = "dataset",
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.class_names = tuple(class_names)
        self.soft_labels = None if soft_labels is None else np.asarray(soft_labels, np.float32)
        self.channels = channels
        self.transform = transform
        self.name = name
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{name}: {len(self.paths)} paths but {len(self.labels)} labels")
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= self.num_classes):
            raise ValueError(f"{name}: labels outside 0..{self.num_classes - 1}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_counts(self) -> np.ndarray:
        """Images per class, ``[K]`` int64, in canonical order."""
        return np.bincount(self.labels, minlength=self.num_classes).astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def load_image(self, index: int) -> np.ndarray:
        """Decoded image ``[H, W, C]`` uint8 at its stored size."""
        return decode_image(self.paths[index], self.channels)

    def cache_key(self, indices: np.ndarray | None = None) -> str:
        """Content key of the decoded pixels of samples ``indices`` (all when None).

        Resolved file paths and a hash of each file's bytes (:mod:`ferkit.data.fingerprint`),
        plus the class, the channel count and :meth:`decode_signature`. Decode settings
        (size, resize method) are added by the cache itself.
        """
        index = np.arange(len(self)) if indices is None else np.asarray(indices, np.int64)
        salt = f"{type(self).__name__}|{self.channels}|{self.decode_signature(index)}"
        return fingerprint_files([self.paths[i] for i in index], salt)

    def decode_signature(self, indices: np.ndarray) -> str:
        """Whatever besides the file bytes shapes the decoded pixels of ``indices`` (e.g. face
        boxes); subclasses whose :meth:`load_image` does more than decode a file override it."""
        return ""

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = torch.from_numpy(np.array(self.load_image(index).transpose(2, 0, 1), order="C"))
        item: dict[str, Any] = {
            "image": self.transform(image) if self.transform else image,
            "label": int(self.labels[index]),
            "index": index,
        }
        if self.soft_labels is not None:
            item["soft_label"] = torch.from_numpy(self.soft_labels[index])
        return item

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> FERDataset:
        """A new dataset of the given samples (labels, soft labels and paths follow)."""
        return _Subset(self, np.asarray(indices, dtype=np.int64), name)

    def summary(self) -> str:
        counts = ", ".join(f"{n} {c}" for n, c in zip(self.class_names, self.class_counts))
        return f"{self.name}: {len(self)} images ({counts})"


class _Subset(FERDataset):
    """A view of some samples of a parent dataset (decoding delegates to the parent)."""

    def __init__(self, parent: FERDataset, indices: np.ndarray, name: str | None) -> None:
        self.parent, self.indices = parent, indices
        soft = None if parent.soft_labels is None else parent.soft_labels[indices]
        paths = [parent.paths[i] for i in indices] if parent.paths else [""] * len(indices)
        super().__init__(
            paths, parent.labels[indices], parent.class_names, soft, parent.channels,
            parent.transform, name or f"{parent.name}[subset of {len(indices)}]",
        )

    def load_image(self, index: int) -> np.ndarray:
        return self.parent.load_image(int(self.indices[index]))

    def cache_key(self, indices: np.ndarray | None = None) -> str:
        chosen = self.indices if indices is None else self.indices[np.asarray(indices, np.int64)]
        return self.parent.cache_key(chosen)
