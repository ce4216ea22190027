"""Turn a training checkpoint into the packaged model: weights as fp16, optimiser state and
training history dropped, the alignment template added to the metadata; then check that the fp16
file predicts what the fp32 checkpoint predicts on FER2013Valid.

    python benchmarks/ship_model.py runs/ferplus_default_model/last.safetensors \
        --root ../shared/data/ferplus

Writes src/ferkit/inference/weights/ferplus_mobilenet_v2.safetensors (the file
``Predictor.from_pretrained`` and ``ferkit predict`` without ``-c`` load) and prints the
validation metrics of both files, the share of equal predictions and the largest logit difference.
``--prior uniform --tau T --prior-how TEXT`` stores the deployment prior the model recommends
(``deploy_prior``: what ``--prior default`` applies) and ``--flip`` the test-time flip, as chosen
by ``benchmarks/prior_table.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ferkit.data import DATASETS
from ferkit.inference.align import default_template
from ferkit.inference.predictor import Predictor, pretrained_path
from ferkit.inference.prior import check_tau
from ferkit.metrics import accuracy, confusion_matrix, mean_class_accuracy

DROP_META = ("history", "scheduler")
SHIPPED_OUTPUT_DIR = "runs/ferplus_default_model"
SHIPPED_DATA_ROOT = "../shared/data/ferplus"  # the recipe's documented data location


def ship(checkpoint: Path, out: Path, deploy_prior: dict | None = None, flip: bool = False) -> Path:
    """Write the fp16 packaged copy of ``checkpoint`` to ``out``, recommending ``deploy_prior``
    (``{"prior", "tau", "how"}``; None: the model as trained) and test-time ``flip``."""
    with safe_open(str(checkpoint), "pt") as handle:
        meta = json.loads(handle.metadata()["ferkit"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys() if not k.startswith("optim/")}
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
    meta = {k: v for k, v in meta.items() if k not in DROP_META}
    # where it was trained is no business of the package: the recipe's own folders instead
    config = meta.get("config", {})
    meta["config"] = {**config, "output_dir": SHIPPED_OUTPUT_DIR,
                      "data": {**config.get("data", {}), "root": SHIPPED_DATA_ROOT}}
    meta["align_template"] = meta.get("align_template") or default_template().round(4).tolist()
    meta["weights_dtype"] = "float16"
    meta["deploy_prior"] = deploy_prior
    meta["test_time_flip"] = flip
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={"ferkit": json.dumps(meta)})
    return out


def compare(fp32: Path, fp16: Path, root: str) -> dict[str, float]:
    """Validation accuracy of both files as trained (no flip, no prior adjustment), of the
    packaged file as ``ferkit predict`` uses it (its recommended flip and prior), and how far the
    two files' outputs are apart."""
    val = DATASETS.create("ferplus", root=root, split="val", num_classes=7)
    images = [val.load_image(i) for i in range(len(val))]
    targets = torch.as_tensor(val.labels)
    out: dict[str, float] = {}

    def evaluate(label: str, predictor: Predictor, prior: str) -> torch.Tensor:
        logits = torch.cat([predictor.logits(images[i:i + 256], prior=prior)
                            for i in range(0, len(images), 256)])
        confusion = confusion_matrix(logits.argmax(1), targets, 7)
        out[f"{label}_accuracy"] = accuracy(confusion)
        out[f"{label}_mean_class_accuracy"] = mean_class_accuracy(confusion)
        return logits

    logits = {name: evaluate(name, Predictor.from_checkpoint(path, device="cpu", flip=False), "train")
              for name, path in (("fp32", fp32), ("fp16", fp16))}
    evaluate("fp16_as_shipped", Predictor.from_checkpoint(fp16, device="cpu"), "default")
    out["equal_predictions"] = float((logits["fp32"].argmax(1) == logits["fp16"].argmax(1))
                                     .float().mean())
    out["max_logit_difference"] = float((logits["fp32"] - logits["fp16"]).abs().max())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--root", required=True, help="FERPlus root, for the fp16 check")
    parser.add_argument("--out", type=Path, default=pretrained_path())
    parser.add_argument("--prior", choices=("train", "uniform"), default="train",
                        help="the deployment prior the model recommends (default: as trained)")
    parser.add_argument("--tau", type=float, default=1.0, help="its strength")
    parser.add_argument("--prior-how", default="", help="how it was chosen (one line)")
    parser.add_argument("--flip", action="store_true",
                        help="recommend averaging each face with its mirror image")
    args = parser.parse_args(argv)
    deploy = None if args.prior == "train" else {"prior": args.prior, "tau": check_tau(args.tau),
                                                 "how": args.prior_how}
    path = ship(args.checkpoint, args.out, deploy, args.flip)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    print(json.dumps(compare(args.checkpoint, path, args.root), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
