"""The typed checkpoint record: round trip through the real writer/reader, and clear errors for
files of a newer ferkit, old or foreign ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ferkit.engine.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    ModelMeta,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)

STORED = {"class_names": ["a", "b"], "num_classes": 2, "image_size": 32, "mean": [0.5, 0.5, 0.5],
          "std": [0.25, 0.25, 0.25], "backbone": "tiny_cnn", "method": "ce",
          "class_counts": [3, 1], "num_samples": 4, "epoch": 2, "ferkit_version": "0.0"}


def _raw(path: Path, meta: object) -> Path:
    save_file({"w": torch.zeros(1)}, str(path), metadata={"ferkit": json.dumps(meta)})
    return path


def test_round_trip_keeps_fields_and_extra(tmp_path: Path) -> None:
    meta = ModelMeta.from_dict(STORED)
    assert meta.class_names == ("a", "b") and meta.channels == 3 and meta.output_stride is None
    assert meta.extra == {"epoch": 2, "ferkit_version": "0.0"}
    path = save_checkpoint(tmp_path / "m.safetensors", nn.Linear(1, 1), meta.with_extra(epoch=3))
    back = load_checkpoint(path).meta
    assert back == meta.with_extra(epoch=3) and read_meta(path) == back
    stored = json.loads((tmp_path / "m.json").read_text())  # the copy for people
    assert stored["format_version"] == FORMAT_VERSION and stored["class_names"] == ["a", "b"]


def test_newer_format_is_refused_with_the_file_named(tmp_path: Path) -> None:
    path = _raw(tmp_path / "new.safetensors", {**STORED, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(CheckpointError, match=rf"new\.safetensors: metadata format_version "
                                              rf"{FORMAT_VERSION + 1} is newer .* upgrade ferkit"):
        load_checkpoint(path)


def test_old_or_foreign_metadata_names_the_missing_fields(tmp_path: Path) -> None:
    old = {k: v for k, v in STORED.items() if k not in ("mean", "std")}
    with pytest.raises(CheckpointError, match=r"old\.safetensors: its metadata lacks mean, std"):
        read_meta(_raw(tmp_path / "old.safetensors", old))
    with pytest.raises(CheckpointError, match=r"is a list, not a mapping"):
        read_meta(_raw(tmp_path / "list.safetensors", [1, 2]))
    with pytest.raises(CheckpointError, match=r"x\.safetensors: its metadata lacks class_names, "
                                              r"num_classes, image_size, mean, std, backbone, "
                                              r"class_counts;"):
        save_checkpoint(tmp_path / "x.safetensors", nn.Linear(1, 1), {"method": "ce"})
