"""Pictures of a run for people to look at: learning curves and a confusion matrix (matplotlib,
the optional ``[plot]`` extra, through its object API: no pyplot, no global backend switch).

Every drawing function returns None when it wrote its file, else the reason it did not (one
line, e.g. matplotlib not installed), so a caller can say why a picture is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ferkit.tempfiles import atomic_path

MISSING = 'matplotlib is not installed (pip install "ferkit[plot]")'


def new_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` on the Agg canvas, or the reason string when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return MISSING
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: Path) -> None:
    """Write ``figure`` as a PNG atomically (a killed run never leaves half a picture)."""
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)


def learning_curves(history: Sequence[dict[str, Any]], path: Path) -> str | None:
    """Training loss per epoch (left); training accuracy (where the method logs it), validation
    overall and mean class accuracy per epoch (right)."""
    if not history:
        return "no finished epoch"
    figure = new_figure(10.0, 4.0)
    if isinstance(figure, str):
        return figure
    epochs = [record["epoch"] for record in history]
    loss_ax, acc_ax = figure.subplots(1, 2)
    loss_ax.plot(epochs, [record["train"].get("loss") for record in history], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="loss")
    curves = {"train (augmented batches)": [r["train"].get("accuracy") for r in history],
              "val overall": [(r.get("val") or {}).get("accuracy") for r in history],
              "val mean class": [(r.get("val") or {}).get("mean_class_accuracy") for r in history]}
    for label, values in curves.items():
        points = [(e, 100 * v) for e, v in zip(epochs, values) if v is not None]
        if points:
            acc_ax.plot(*zip(*points), marker="o", label=label)
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy", ylim=(0, 100))
    acc_ax.legend(fontsize="small")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    save_figure(figure, path)
    return None


def confusion_matrix_plot(report: dict[str, Any], title: str, path: Path) -> str | None:
    """The confusion matrix of an evaluation report (``confusion_matrix``, ``class_names``): each
    row normalised to the class's recall (colour) with the image count written in each cell."""
    figure = new_figure(7.0, 6.0)
    if isinstance(figure, str):
        return figure
    counts, names = report["confusion_matrix"], report["class_names"]
    recall = [[cell / max(1, sum(row)) for cell in row] for row in counts]
    ax = figure.subplots()
    image = ax.imshow(recall, cmap="Blues", vmin=0.0, vmax=1.0)
    for i, row in enumerate(counts):
        for j, cell in enumerate(row):
            ax.text(j, i, str(cell), ha="center", va="center", fontsize="small",
                    color="white" if recall[i][j] > 0.6 else "black")
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    figure.colorbar(image, ax=ax, label="share of the true class (recall on the diagonal)")
    save_figure(figure, path)
    return None
