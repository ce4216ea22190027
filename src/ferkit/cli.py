"""Command line: parse arguments -> config -> call :mod:`ferkit.api`. No logic of its own."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from ferkit._version import __version__
from ferkit.config import ConfigError, DataConfig
from ferkit.data.base import DatasetError
from ferkit.engine.checkpoint import CheckpointError
from ferkit.registry import UnknownNameError

USER_ERRORS = (ConfigError, DatasetError, CheckpointError, UnknownNameError, FileNotFoundError,
               ValueError)


def _train(args: argparse.Namespace) -> int:
    from ferkit.api import train
    from ferkit.config import load_config

    overrides = list(args.set or [])
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    cfg = load_config(args.config, overrides)
    result = train(cfg)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    best, last = result.best, result.last
    print(f"finished {len(result.history)} epochs; outputs in {cfg.output_dir}")
    for label, record in (("last epoch", last), ("val-selected", best)):
        if record and record.get("val"):
            val = record["val"]
            print(f"val ({label}, epoch {record['epoch']}): overall {100 * val['accuracy']:.2f}  "
                  f"mean class {100 * val['mean_class_accuracy']:.2f}  "
                  f"macro-F1 {100 * val['macro_f1']:.2f}")
    print(f"report: {Path(cfg.output_dir) / 'report.md'}")
    return 0


def _data_config(args: argparse.Namespace, shortcuts: dict[str, str]) -> DataConfig:
    """``--config`` + ``--set`` + shortcut flags (``--dataset`` -> ``data.dataset``) -> DataConfig."""
    from ferkit.config import load_config

    overrides = list(args.set or [])
    overrides += [f"{key}={getattr(args, flag)}" for flag, key in shortcuts.items()
                  if getattr(args, flag) is not None]
    return load_config(args.config, overrides).data


def _eval(args: argparse.Namespace) -> int:
    from ferkit.api import evaluate_split

    data = _data_config(args, {"dataset": "data.dataset", "root": "data.root",
                               "num_classes": "data.num_classes"})
    result = evaluate_split(args.checkpoint, data, args.split, args.out, args.device)
    print(result.markdown)
    print(f"wrote {result.json_path} and {result.markdown_path}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ferkit.inference import Predictor

    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device)
    results = predictor.predict(args.images)
    for path, result in zip(args.images, results):
        if args.json:
            print(json.dumps({"image": str(path), **result}))
        else:
            print(f"{path}: {result['label']} ({100 * result['confidence']:.1f}%)")
    if args.cam_dir:
        written = predictor.save_cam_overlays(args.images, args.cam_dir,
                                              [Path(p).stem for p in args.images])
        print(f"attention maps: {len(written)} files in {args.cam_dir}")
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from ferkit.api import describe_data

    print(describe_data(_data_config(args, {
        "root": "data.root", "dataset": "data.dataset", "num_classes": "data.num_classes",
        "imbalance_factor": "data.imbalance_factor"})))
    return 0


def _config(args: argparse.Namespace) -> int:
    from ferkit.config_doc import format_config_doc

    print(format_config_doc(registered=not args.keys_only))
    return 0


def _list(args: argparse.Namespace) -> int:
    from ferkit import BACKBONES, DATASETS, METHODS

    for registry in (DATASETS, BACKBONES, METHODS):
        print(f"{registry.kind}s: {', '.join(registry.names())}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ferkit.bench import format_summary, run_protocol

    summary = run_protocol(args.protocol, args.root, args.out, list(args.set or []),
                           only=args.only, dry_run=args.dry_run, report_only=args.report_only)
    print(format_summary(summary))
    return 1 if summary["failed"] else 0


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    """The data flags ``eval`` and ``datasets`` share: a recipe, overrides and shortcuts."""
    p.add_argument("--config", help="recipe YAML: its data section is used")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override, e.g. --set data.options.variant=original (repeatable)")
    p.add_argument("--dataset", help="shortcut for --set data.dataset=...")
    p.add_argument("--num-classes", help="shortcut for --set data.num_classes=...")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferkit", description="Facial expression recognition "
                                     "on imbalanced data.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"ferkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one run (defaults: built-in synthetic faces)")
    p.add_argument("--config", help="recipe YAML (overrides of the defaults)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override, e.g. --set train.epochs=40 (repeatable)")
    p.add_argument("--output-dir", help="shortcut for --set output_dir=...")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint on a dataset split")
    p.add_argument("checkpoint")
    _add_data_flags(p)
    p.add_argument("--root", help="shortcut for --set data.root=...")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="folder for the JSON and markdown (default: beside the checkpoint)")
    p.set_defaults(func=_eval)

    p = sub.add_parser("predict", help="predict expressions of face images")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+")
    p.add_argument("--cam-dir", help="also save attention-map overlays here")
    p.add_argument("--json", action="store_true", help="one JSON line per image")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_predict)

    p = sub.add_parser("datasets", help="check a dataset root and print counts per split/class")
    p.add_argument("root", nargs="?", help="shortcut for --set data.root=...")
    _add_data_flags(p)
    p.add_argument("--imbalance-factor", help="shortcut for --set data.imbalance_factor=...")
    p.set_defaults(func=_datasets)

    p = sub.add_parser("config", help="every config key with its type, default and help")
    p.add_argument("--keys-only", action="store_true",
                   help="leave out the per-method parameters and per-dataset options")
    p.set_defaults(func=_config)

    p = sub.add_parser("bench", help="run a benchmark protocol (resumable) and write result tables")
    p.add_argument("protocol", help="protocol YAML file, or a name in configs/bench "
                   "(ferplus-cpu, ferplus-paper, rafdb-paper)")
    p.add_argument("--root", help="dataset root folder (data.root of every run)")
    p.add_argument("--out", required=True, help="results folder (runs/, results.md, results.json)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override for every run, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--only", metavar="SUBSTRING",
                   help="train only runs whose id (<setting>/<method>/seed<k>) contains this")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true",
                      help="list the runs and which are finished; train and write nothing")
    mode.add_argument("--report-only", action="store_true",
                      help="rebuild the report from finished runs; train nothing")
    p.set_defaults(func=_bench)

    p = sub.add_parser("list", help="registered datasets, backbones and methods")
    p.set_defaults(func=_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume from the last checkpoint",
              file=sys.stderr)
        return 130
