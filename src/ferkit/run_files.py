"""The files of one training run's folder, named in one place (the trainer writes them, the run
folder checks and ``--overwrite`` delete them, the benchmark and the CLI read them).
Imports nothing of ferkit's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFiles:
    """The paths of a run folder's files.

    Attributes:
        dir: the run folder (``output_dir``).
    """

    dir: Path

    def __init__(self, dir: Path | str) -> None:  # noqa: A002 (the folder, as in Path.dir)
        object.__setattr__(self, "dir", Path(dir))

    def checkpoint(self, name: str) -> Path:
        """``last`` (every epoch, resumable) or ``best`` (val-selected) checkpoint."""
        return self.dir / f"{name}.safetensors"

    @property
    def config(self) -> Path:
        """The resolved config with provenance."""
        return self.dir / "config.yaml"

    @property
    def last(self) -> Path:
        return self.checkpoint("last")

    @property
    def best(self) -> Path:
        return self.checkpoint("best")

    @property
    def metrics_jsonl(self) -> Path:
        """One JSON line per epoch."""
        return self.dir / "metrics.jsonl"

    @property
    def metrics_csv(self) -> Path:
        return self.dir / "metrics.csv"

    @property
    def results(self) -> Path:
        """The finished run's summary (its presence marks a finished run)."""
        return self.dir / "results.json"

    @property
    def report(self) -> Path:
        return self.dir / "report.md"

    @property
    def learning_curves(self) -> Path:
        return self.dir / LEARNING_CURVES

    @property
    def confusion_matrix(self) -> Path:
        return self.dir / CONFUSION_MATRIX

    @property
    def tensorboard(self) -> Path:
        return self.dir / "tensorboard"

    @property
    def lock(self) -> Path:
        """Held by the one process writing the folder (:func:`ferkit.run_folder.run_folder_lock`)."""
        return self.dir / LOCK


# The pictures beside report.md (with the [plot] extra); report.md links them by these names.
LEARNING_CURVES, CONFUSION_MATRIX = "learning_curves.png", "confusion_matrix.png"
# The writer's lock file: never deleted by --overwrite, removed by its writer when it ends.
LOCK = ".lock"
# What ``ferkit train`` writes into a run folder: what ``--overwrite`` deletes (nothing else).
RUN_FILES = ("config.yaml", "last.safetensors", "last.json", "best.safetensors", "best.json",
             "metrics.jsonl", "metrics.csv", "results.json", "report.md", LEARNING_CURVES,
             CONFUSION_MATRIX, "tensorboard")

__all__ = ["CONFUSION_MATRIX", "LEARNING_CURVES", "LOCK", "RUN_FILES", "RunFiles"]
