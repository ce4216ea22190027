"""The dataset registry: each dataset module registers its builder here, with what it publishes.

A dataset module declares, next to its builder, everything the rest of ferkit needs to know::

    @register_dataset("rafdb", title="RAF-DB", splits=("train", "test"), tree=TREE,
                      fake_tree=write_fake_tree)
    def rafdb(request: DatasetRequest, *, variant: str = "auto") -> FERDataset:
        root, split, num_classes, transform, require_images = request
        ...

- the official ``splits`` (a split outside them raises :class:`SplitNotAvailable`, so callers
  hold out part of train instead);
- the standard arguments, once: the builder receives them as one checked
  :class:`DatasetRequest`, and the registered constructor has the standard signature
  ``(root, split, num_classes=7, transform=None, require_images=True, **options)``;
- its typed options: the keyword-only parameters after ``*`` (``data.options`` in a config),
  checked by name and type before anything is read (:func:`check_dataset_options`);
- ``tree``: the expected layout shown in every missing-file error;
- ``fake_tree``: writes a tiny copy of the published layout and returns the counts a correct
  parser must find, which is all the registry-driven contract tests need.

The shared prologue (standard signature, unknown/mistyped options, unknown or unofficial split)
runs once, in the registered wrapper, before the builder is called; the decorator returns that wrapper, so
the module-level name (``rafdb.rafdb``) is the checked constructor.

:data:`DATASETS` and the checks of ``data.options`` live in :mod:`ferkit.data.options`, which
imports no dataset (nor torch); they are re-exported here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferkit.config import DataConfig
from ferkit.data.base import DatasetError, FERDataset
from ferkit.data.options import (  # noqa: F401  (re-exported)
    DATASETS,
    check_dataset_options,
    data_config_errors,
    dataset_options,
    label_mode_errors,
    settable_options,
)
from ferkit.data.splits import SPLITS, check_split
from ferkit.params import Param, signature_params


@dataclass(frozen=True)
class DatasetRequest:
    """The standard arguments of every dataset, as the builder receives them (split checked).

    Attributes:
        root: data root as the dataset expects it (None for generated data).
        split: "train", "val" or "test", one of the dataset's official splits.
        num_classes: 7 or 8.
        transform: optional callable on the uint8 ``[C, H, W]`` tensor.
        require_images: check that listed images exist; False works from the label files.
    """

    root: str | Path | None
    split: str
    num_classes: int = 7
    transform: Callable | None = None
    require_images: bool = True

    def __iter__(self):  # noqa: ANN204  (unpacking: root, split, num_classes, ... = request)
        return iter(dataclasses.astuple(self))


@dataclass(frozen=True)
class FakeTree:
    """What a ``fake_tree`` hook wrote: the root to pass, the options to build with, and the
    class counts per split (canonical order) a correct parser finds there. A split missing from
    ``counts`` must raise :class:`SplitNotAvailable`."""

    root: Path | None
    counts: dict[str, list[int]]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetInfo:
    """What a registered dataset declares about itself.

    Attributes:
        name: registry name (``data.dataset``).
        title: name used in messages ("RAF-DB").
        splits: official splits.
        options: typed options (keyword-only parameters of the builder), by name.
        tree: expected layout, shown in missing-file errors ("" for generated data).
        fake_tree: hook writing a tiny published-layout tree under a folder (for tests).
        needs_root: False for generated datasets that read nothing from disk.
        lists_files: True when label files list the images (a deleted image is then reported
            as missing); False when the files on disk are the listing (ImageFolder).
        marker: a file or folder, relative to the root, whose presence identifies this layout
            (``ferkit datasets ROOT`` without ``--dataset``); None: not detected.
    """

    name: str
    title: str
    splits: tuple[str, ...]
    options: dict[str, Param]
    tree: str
    fake_tree: Callable[[Path], FakeTree] | None
    needs_root: bool = True
    lists_files: bool = True
    marker: str | None = None


_INFO: dict[str, DatasetInfo] = {}


def register_dataset(
    name: str, *, splits: Sequence[str], tree: str = "", title: str | None = None,
    fake_tree: Callable[[Path], FakeTree] | None = None, needs_root: bool = True,
    lists_files: bool = True, marker: str | None = None,
) -> Callable[[Callable[..., FERDataset]], Callable[..., FERDataset]]:
    """Register a dataset builder ``fn(request: DatasetRequest, *, **typed_options)`` under
    ``name``; see the module docstring. Returns the checked constructor."""
    def decorator(build: Callable[..., FERDataset]) -> Callable[..., FERDataset]:
        info = DatasetInfo(name, title or name, tuple(splits),
                           signature_params(build, ("request",), keyword_only=True), tree,
                           fake_tree, needs_root, lists_files, marker)

        def construct(root: str | Path | None = None, split: str = "train", num_classes: int = 7,
                      transform: Callable | None = None, require_images: bool = True,
                      **options: Any) -> FERDataset:
            errors = check_dataset_options(name, options, info.options)
            unknown = sorted(k for k in options if k not in info.options)
            if unknown:  # the historical first words, which users and tests know
                errors.insert(0, f"{name}: unknown options {unknown}")
            if errors:
                raise DatasetError("; ".join(errors))
            check_split(split, info.splits, info.title)
            return build(DatasetRequest(root, split, num_classes, transform, require_images),
                         **options)

        # the builder's names, so the catalogue records the module that registers the dataset
        construct.__doc__, construct.__name__ = build.__doc__, build.__name__
        construct.__module__, construct.__qualname__ = build.__module__, build.__qualname__
        DATASETS.register(name, options=info.options)(construct)
        _INFO[name] = info
        return construct

    return decorator


def dataset_info(name: str) -> DatasetInfo:
    """What dataset ``name`` declares (unknown names raise with a did-you-mean)."""
    DATASETS.get(name)
    return _INFO[name]


def detect_dataset(root: str | Path) -> str:
    """The registered layout found under ``root`` (by each dataset's ``marker``).

    Raises:
        DatasetError: no layout matches, or several do; the message lists the markers and says
            to pass ``--dataset``.
    """
    infos = {name: dataset_info(name) for name in DATASETS.names()}
    found = [name for name, info in infos.items()
             if info.marker and (Path(root) / info.marker).exists()]
    if len(found) == 1:
        return found[0]
    markers = "; ".join(f"{info.marker} ({name})" for name, info in infos.items() if info.marker)
    what = (f"matches several layouts ({', '.join(found)})" if found else
            f"does not look like any known layout (looked for: {markers})")
    raise DatasetError(f"{root} {what}; name it with --dataset NAME (ferkit list shows the "
                       "datasets)")


def has_split(name: str, split: str) -> bool:
    """Whether dataset ``name`` publishes ``split`` (False: build a seeded hold-out instead).

    For "csv" and "folder" this is always True; whether the user's data has the split is only
    known when building (SplitNotAvailable then).
    """
    return split in dataset_info(name).splits


def build_dataset(
    name: str,
    root: str | Path | None,
    split: str,
    num_classes: int = 7,
    transform: Callable | None = None,
    **options: Any,
) -> FERDataset:
    """Build a registered dataset: ``DATASETS.create`` with the standard arguments."""
    return DATASETS.create(name, root=root, split=split, num_classes=num_classes,
                           transform=transform, **options)


def dataset_from_config(cfg: DataConfig, split: str, **kwargs: Any) -> FERDataset:
    """One split of the dataset a :class:`~ferkit.config.DataConfig` describes: the one place a
    config becomes a dataset (training, ``ferkit eval`` and ``ferkit datasets`` all use it), with
    ``data.options`` and ``data.label_mode`` (:func:`dataset_options`)."""
    return DATASETS.create(cfg.dataset, root=cfg.root, split=split, num_classes=cfg.num_classes,
                           **dataset_options(cfg), **kwargs)


__all__ = ["DATASETS", "SPLITS", "DatasetInfo", "DatasetRequest", "FakeTree", "build_dataset",
           "detect_dataset",
           "check_dataset_options", "data_config_errors", "dataset_from_config", "dataset_info",
           "dataset_options", "has_split", "label_mode_errors", "register_dataset",
           "settable_options"]
