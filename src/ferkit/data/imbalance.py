"""Imbalance-factor subsets with the exponential profile of Cui et al. (CVPR 2019).

Classes are ranked by training count (largest first; ties by canonical index). The class of rank
``r`` keeps ``int(n_max * (1 / IF) ** (r / (L - 1)))`` images (truncation, not rounding; capped at
the images it has), drawn as a seeded random subset; the test set stays unchanged. From the real
RAF-DB train counts this gives the numbers of the MEK paper (section 4.4), e.g. IF 100:
Hap 4772, Neu 2214, Sad 1028, Sur 477, Dis 221, Ang 102, Fea 47.

``max_count`` caps the largest class before the profile is applied (``n_max = min(n_max,
max_count)``), so another dataset can take the shape of a published subset: FERPlus capped at 4772
with IF 100 keeps 4772 / 2214 / 1028 / 477 / 221 / 102 / 47 images, exactly RAF-DB IF 100's sizes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ferkit.data.base import DatasetError, FERDataset


def imbalance_counts(
    class_counts: Sequence[int] | np.ndarray,
    imbalance_factor: float,
    class_names: Sequence[str] | None = None,
    max_count: int | None = None,
) -> np.ndarray:
    """Images to keep per class ``[L]`` (canonical order) for an imbalance factor.

    Args:
        class_counts: training images per class, canonical order.
        imbalance_factor: n_max / n_min of the result, >= 1.
        class_names: optional names, only used in error messages.
        max_count: cap on the largest class's size (None = its full count).

    Raises:
        ValueError: a factor below 1, fewer than two classes, or a class with zero images.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    if imbalance_factor < 1:
        raise ValueError(f"imbalance_factor must be >= 1 (n_max / n_min), got {imbalance_factor}")
    if counts.ndim != 1 or len(counts) < 2:
        raise ValueError(f"need counts of at least two classes, got {counts.tolist()}")
    empty = np.flatnonzero(counts <= 0)
    if empty.size:
        names = [class_names[i] if class_names else f"class {i}" for i in empty]
        raise ValueError(
            f"{', '.join(names)} has no images (counts {counts.tolist()}); an imbalance-factor "
            f"subset needs every class. Use a split that has all classes, or fewer classes."
        )
    num_classes = len(counts)
    order = np.argsort(-counts, kind="stable")  # rank r -> class index
    n_max = int(counts[order[0]])
    if max_count is not None:
        if max_count < 1:
            raise ValueError(f"imbalance max_count must be >= 1, got {max_count}")
        n_max = min(n_max, int(max_count))
    keep = np.zeros(num_classes, dtype=np.int64)
    for rank, cls in enumerate(order):
        target = int(n_max * (1.0 / imbalance_factor) ** (rank / (num_classes - 1)))
        keep[cls] = min(target, int(counts[cls]))
    return keep


def imbalanced_subset(dataset: FERDataset, imbalance_factor: float, seed: int,
                      max_count: int | None = None) -> FERDataset:
    """A seeded random subset of ``dataset`` with the exponential imbalance profile.

    Each class draws its images with its own generator (seeded by ``(seed, class index)``), so a
    class's subset does not depend on the other classes. Samples keep their original order.

    Raises:
        DatasetError: a class of ``dataset`` has no images, or the factor is invalid.
    """
    try:
        keep = imbalance_counts(dataset.class_counts, imbalance_factor, dataset.class_names,
                                max_count)
    except ValueError as err:
        raise DatasetError(f"{dataset.name}: {err}") from None
    chosen = []
    for cls, count in enumerate(keep):
        members = np.flatnonzero(dataset.labels == cls)
        rng = np.random.default_rng([seed, cls])
        chosen.append(rng.choice(members, size=int(count), replace=False))
    indices = np.sort(np.concatenate(chosen))
    cap = f",max{max_count}" if max_count is not None else ""
    return dataset.subset(indices, name=f"{dataset.name}[IF{imbalance_factor:g}{cap},seed{seed}]")
