"""Fault injection: ``kill -9`` at seeded random points of training, checkpoint writes and a cache
build; afterwards every file loads, no temp file survives the next run, and the resumed run ends
bit-identical to an uninterrupted one.

Each faulty run is a forked child process (it inherits the imported torch, so a run costs a
fraction of a second instead of seconds of imports). The child counts the events of one kind
(training steps, checkpoint writes, renames of finished temp files) and, at the chosen one, tells
the parent and blocks; the parent then sends it SIGKILL. At ``partial_save`` the checkpoint's temp
file is first cut to half its size, as a kill in the middle of the write leaves it. The kill
points come from a seeded generator, so the test is deterministic in outcome.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import random
import signal
import socket
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tests.conftest import tiny_overrides

import ferkit.api
import ferkit.engine.checkpoint
import ferkit.engine.train
import ferkit.run_folder
from ferkit.checks import load_config
from ferkit.data.cache import cached_images
from ferkit.data.synthetic import SyntheticFaces
from ferkit.engine.checkpoint import load_checkpoint
from ferkit.tempfiles import TEMP_PATTERN

pytestmark = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                                reason="needs the fork start method (Linux/macOS)")
Point = tuple[str, int]  # (event kind, which occurrence) at which the child is killed
CHILD: dict[str, Any] = {}  # set in the forked child only: its ``reached(kind)`` hook


def _inject(point: Point | None, conn: Any) -> None:
    """Patch the child's write and step primitives to stop at ``point`` (child process only)."""
    counts: Counter[str] = Counter()

    def reached(kind: str) -> None:
        counts[kind] += 1
        if point == (kind, counts[kind]):
            conn.send(kind)
            time.sleep(600)  # the parent kills us here

    real_replace, real_save = os.replace, ferkit.engine.checkpoint.save_file
    real_step = ferkit.engine.train.train_step

    def replace(src: Any, dst: Any) -> None:
        reached("before_rename")  # the temp file is complete, the rename has not happened
        real_replace(src, dst)
        reached("after_rename")

    def save_file(tensors: Any, filename: str, metadata: Any = None) -> None:
        real_save(tensors, filename, metadata=metadata)
        if point is not None and point[0] == "partial_save" and counts["partial_save"] + 1 == point[1]:
            os.truncate(filename, os.path.getsize(filename) // 2)
        reached("partial_save")

    def train_step(*args: Any, **kwargs: Any) -> Any:
        reached("step")
        return real_step(*args, **kwargs)

    os.replace = replace
    ferkit.engine.checkpoint.save_file = save_file
    ferkit.engine.train.train_step = train_step
    CHILD["reached"] = reached


def _child(conn: Any, point: Point | None, work: Any) -> None:
    try:
        _inject(point, conn)
        work()
        conn.send("done")
        os._exit(0)
    except BaseException:  # noqa: BLE001 - report anything to the parent, then leave
        conn.send("error: " + traceback.format_exc())
        os._exit(1)


def run_child(work: Any, point: Point | None) -> int:
    """Run ``work()`` in a forked child; SIGKILL it at ``point``. Returns the child's pid."""
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    process = context.Process(target=_child, args=(child_end, point, work))
    process.start()
    assert parent_end.poll(120), "child neither reached its kill point nor finished"
    message = parent_end.recv()
    if point is not None and message == point[0]:
        os.kill(process.pid, signal.SIGKILL)
        process.join(30)
        assert process.exitcode == -signal.SIGKILL
    else:
        process.join(30)
        assert message == "done" and point is None, f"point {point}: {message}"
    return process.pid


def temp_files(*folders: Path) -> list[Path]:
    return [p for f in folders for p in f.rglob("*") if TEMP_PATTERN.search(p.name)]


def check_loadable(folder: Path) -> None:
    """Every non-temporary file of a run folder parses as what its suffix says."""
    for path in folder.rglob("*"):
        if not path.is_file() or TEMP_PATTERN.search(path.name):
            continue
        if path.suffix == ".safetensors":
            load_checkpoint(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            [json.loads(line) for line in path.read_text().splitlines()]
        elif path.suffix == ".yaml":
            assert isinstance(yaml.safe_load(path.read_text()), dict), path
        elif path.suffix == ".png":  # the report's plots
            with Image.open(path) as image:
                image.verify()
        elif path.suffix == ".csv":
            rows = list(csv.reader(path.open()))
            assert rows and all(len(r) == len(rows[0]) for r in rows), path
        elif path.suffix == ".png":  # the run's pictures (with matplotlib), written atomically
            with Image.open(path) as picture:
                picture.verify()
        else:
            path.read_text()


def _config(out: Path, cache: Path) -> Any:
    return load_config(None, tiny_overrides(
        out, **{"train.epochs": 5, "train.num_threads": 1, "train.amp": "none",
                "data.cache_dir": str(cache),
                "data.options": "{size: 16, num_train: 64, num_val: 24, num_test: 16}",
                "data.image_size": 16}))


def _pid_of(path: Path) -> int:
    return int(TEMP_PATTERN.search(path.name)["pid"])


def test_kills_during_training_and_checkpoint_writes(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    reference = ferkit.api.train(_config(tmp_path / "reference", tmp_path / "cache-ref"))
    rng = random.Random(2024)
    points: list[Point] = [("step", rng.randint(1, 4)), ("partial_save", rng.randint(1, 3)),
                           ("before_rename", rng.randint(2, 8)), ("after_rename", rng.randint(2, 8)),
                           ("partial_save", rng.randint(1, 2)), ("step", rng.randint(1, 4))]
    out = tmp_path / "run"
    for point in points:
        pid = run_child(lambda: ferkit.api.train(_config(out, cache)), point)
        check_loadable(out)
        # Temp files of the runs before this one were removed when this one started.
        assert all(_pid_of(p) == pid for p in temp_files(out, cache)), temp_files(out, cache)
    run_child(lambda: ferkit.api.train(_config(out, cache)), None)
    check_loadable(out)
    assert temp_files(out, cache) == []
    for name in ("last", "best"):
        resumed = load_checkpoint(out / f"{name}.safetensors")
        uninterrupted = load_checkpoint(reference.output_dir / f"{name}.safetensors")
        assert resumed.state_dict.keys() == uninterrupted.state_dict.keys()
        for key, value in uninterrupted.state_dict.items():
            assert torch.equal(resumed.state_dict[key], value), key
    optimizer_states = [load_checkpoint(d / "last.safetensors").optimizer_state["state"]
                        for d in (out, reference.output_dir)]
    for param_id, state in optimizer_states[1].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(optimizer_states[0][param_id][key]),
                               torch.as_tensor(value)), (param_id, key)
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(h["train"], h["val"]) for h in history] == [(h["train"], h["val"])
                                                         for h in reference.history]


def _cache_dataset() -> SyntheticFaces:
    return SyntheticFaces("train", size=16, num_images=300)


@pytest.mark.parametrize(("point", "reused"), [
    (("decode", 137), False),  # killed half-way through decoding
    (("before_rename", 1), False),  # complete temp file, never renamed
    (("after_rename", 1), True),  # renamed: a complete, verified cache
], ids=["mid-decode", "before-rename", "after-rename"])
def test_kill_during_cache_build(tmp_path: Path, point: Point, reused: bool) -> None:
    cache = tmp_path / "cache"

    def build() -> None:
        dataset = _cache_dataset()
        load_image, reached = dataset.load_image, CHILD["reached"]
        dataset.load_image = lambda index: (reached("decode"), load_image(index))[1]
        cached_images(dataset, 16, cache, workers=1)

    pid = run_child(build, point)
    left = temp_files(cache)
    assert all(_pid_of(p) == pid for p in left) and (left != []) == (not reused)
    dataset = _cache_dataset()
    decodes: list[int] = []
    load_image = dataset.load_image
    dataset.load_image = lambda index: (decodes.append(index), load_image(index))[1]
    images = cached_images(dataset, 16, cache, workers=1)
    assert len(decodes) == (0 if reused else 300)  # a verified file is used, else rebuilt
    np.testing.assert_array_equal(images, cached_images(_cache_dataset(), 16, None, workers=1))
    assert temp_files(cache) == [] and len(list(cache.glob("*.fkcache"))) == 1


def test_two_processes_on_one_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         caplog: pytest.LogCaptureFixture) -> None:
    from ferkit.cli import main as cli_main

    out, cache = tmp_path / "run", tmp_path / "cache"
    cfg = _config(out, cache)
    ferkit.api.train(_config(tmp_path / "reference", tmp_path / "cache-ref"))
    # a real second process trains into `out` and stops (alive, holding the lock) at step 3
    pid = os.getpid()
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=_child, args=(child_end, ("step", 3),
                                                 lambda: ferkit.api.train(cfg)))
    child.start()
    try:
        assert parent_end.poll(120) and parent_end.recv() == "step"
        sets = [x for s in tiny_overrides(out, **{"optim.lr": 0.01}) for x in ("--set", s)]
        assert cli_main(["train", *sets]) == 2  # another config, at once, naming the holder
        err = capsys.readouterr().err
        assert f"error: {out} is being written by another process (pid {child.pid} on host " \
            f"{socket.gethostname()}, since " in err and "would mix their files" in err
        with pytest.raises(ferkit.run_folder.RunFolderBusy, match=f"pid {child.pid}"):
            ferkit.api.train(cfg)  # the same config is refused too while the holder lives
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
    assert os.getpid() == pid and (out / ".lock").is_file()  # left by the killed writer
    with caplog.at_level("WARNING", logger="ferkit.run_folder"):
        result = ferkit.api.train(cfg)  # the stale lock is taken over, the run completes
    assert f"took over the lock {out / '.lock'} left by pid {child.pid}" in caplog.text
    assert not (out / ".lock").exists() and len(result.history) == 5
    stored = yaml.safe_load((out / "config.yaml").read_text())
    assert stored["optim"]["lr"] == cfg.optim.lr == load_checkpoint(
        out / "last.safetensors").meta.config["optim"]["lr"]
