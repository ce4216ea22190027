"""Command line: parse arguments -> config -> call :mod:`ferkit.api`. No logic of its own.

Only ferkit's user errors (:class:`ferkit.errors.FerkitError`) become one ``error:`` line and exit
status 2 (``-v`` adds the traceback); any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from ferkit._version import __version__
from ferkit.config_yaml import protocol_names
from ferkit.errors import FerkitError, UsageError
from ferkit.limits import DEFAULT_MAX_PIXELS, SERVE_DECODE_SLOTS, SERVE_MAX_PIXELS
from ferkit.run_files import RunFiles

if TYPE_CHECKING:
    from ferkit.config import DataConfig

class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (the training loop and the benchmark record it the same)."""


def _interrupted(output_dir: str) -> str:
    last = RunFiles(output_dir).last
    if last.is_file():
        return (f"stopped; {last} holds the last finished epoch: re-run the same command to "
                "resume from it")
    return (f"stopped before a first epoch finished: nothing was saved in {output_dir} yet, so "
            "a re-run of the same command starts from the beginning")


def _positive(kind: type) -> Callable[[str], int | float]:
    """An argparse type: a finite number of ``kind`` (int or float) above 0."""
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(
                f"expected a {'whole ' if kind is int else ''}number above 0, got '{text}'")
        return value
    return parse


def _train(args: argparse.Namespace) -> int:
    from ferkit.api import train
    from ferkit.checks import load_config

    overrides = list(args.set or [])
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    try:
        cfg = load_config(args.config, overrides)
    except KeyboardInterrupt as err:
        err.args = ("stopped while reading the configuration; nothing was written",)
        raise
    try:
        result = train(cfg, overwrite=args.overwrite)
    except KeyboardInterrupt as err:
        err.args = (_interrupted(str(cfg.output_dir)),)
        raise
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
    from ferkit.checks import load_config

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
    from ferkit.inference.files import write_results
    from ferkit.inference.predictor import backend_for
    from ferkit.inference.prior import check_tau, parse_prior
    from ferkit.inference.video_files import predict_media, predict_webcam, video_options
    from ferkit.output_paths import open_output_file

    images, checkpoint = list(args.images), args.checkpoint
    if checkpoint is None and images and images[0].endswith((".safetensors", ".onnx")):
        checkpoint = images.pop(0)  # the earlier form: ferkit predict CHECKPOINT IMAGE...
    if not images and args.webcam is None:
        raise UsageError("ferkit predict needs at least one image, video, folder or glob pattern "
                         "(or --webcam)")
    if images and args.webcam is not None:
        raise UsageError(f"--webcam reads a camera instead of files; leave out {images[0]} "
                         "(or --webcam)")
    prior, video = parse_prior(args.prior), video_options(args)
    tau = None if args.tau is None else check_tau(args.tau)
    options = {"device": args.device, "backend": backend_for(checkpoint, args.backend),
               "threads": args.threads, **_detector_options(args)}
    predictor = (Predictor.from_checkpoint(checkpoint, **options) if checkpoint
                 else Predictor.from_pretrained(**options))
    prior, tau = predictor.resolve_prior(prior, tau)  # a bad prior stops before any image
    predictor.batch_size = args.batch_size
    common = {"detect": not args.no_detect, "prior": prior, "tau": tau,
              "annotate_dir": args.annotate}
    skipped: list[Path] = []
    summary = open_output_file(args.summary, "--summary") if args.summary else nullcontext()
    with summary as summary_file:
        results = (predict_webcam(predictor, args.webcam, video, summary_file=summary_file, **common)
                   if args.webcam is not None else
                   predict_media(predictor, images, video, batch_size=args.batch_size,
                                 cam_dir=args.cam_dir, cam_mirror=args.cam_mirror,
                                 summary_file=summary_file, recursive=args.recursive,
                                 skipped=skipped, max_pixels=round(args.max_megapixels * 1e6),
                                 **common))
        tally = write_results(results, predictor.class_names, "jsonl" if args.json else args.format)
    print(tally.line(skipped), file=sys.stderr)
    if tally.read == 0:
        print(f"error: no image could be read ({len(tally.unreadable)} unreadable input(s))"
              if tally.unreadable else "error: no image file found in the inputs given",
              file=sys.stderr)
        return 1
    return 0


def _export(args: argparse.Namespace) -> int:
    from ferkit.inference.export import ExportError, export_onnx
    from ferkit.inference.predictor import pretrained_path

    try:
        report = export_onnx(args.checkpoint or pretrained_path(), args.out, tolerance=args.tolerance,
                             num_parity_images=args.parity_images, exporter=args.exporter)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"parity on {report.parity_source}: max |logit difference| {report.max_abs_diff:.3g} "
          f"(tolerance {report.tolerance:g}); argmax agrees on {100 * report.labels_agree:.0f}%")
    print(f"wrote {report.path} ({report.path.stat().st_size / 1e6:.1f} MB)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ferkit.inference.predictor import backend_for
    from ferkit.inference.serve import run_server

    run_server(args.checkpoint, host=args.host, port=args.port,
               backend=backend_for(args.checkpoint, args.backend),
               device=args.device, max_upload_mb=args.max_upload_mb, threads=args.threads,
               max_pixels=round(args.max_megapixels * 1e6), **_detector_options(args))
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from ferkit.api import describe_data
    from ferkit.data import detect_dataset

    if args.root and args.dataset is None and args.config is None:
        args.dataset = detect_dataset(args.root)  # a root alone: its layout says which dataset
        print(f"{args.root}: {args.dataset} layout (name another with --dataset)")
    print(describe_data(_data_config(args, {
        "root": "data.root", "dataset": "data.dataset", "num_classes": "data.num_classes",
        "imbalance_factor": "data.imbalance_factor"})))
    return 0


def _config(args: argparse.Namespace) -> int:
    if args.config is None and not args.set:
        from ferkit.config_doc import format_config_doc

        print(format_config_doc(registered=not args.keys_only))
        return 0
    from ferkit.checks import load_config
    from ferkit.config import config_text

    print(config_text(load_config(args.config, list(args.set or []))), end="")
    return 0


def _list(args: argparse.Namespace) -> int:
    from ferkit import BACKBONES, DATASETS, METHODS
    from ferkit.config_yaml import recipe_names

    for registry in (DATASETS, BACKBONES, METHODS):
        print(f"{registry.kind}s: {', '.join(registry.names())}")
    print(f"recipes (ferkit train --config NAME): {', '.join(recipe_names())}")
    print(f"benchmark protocols (ferkit bench NAME): {', '.join(protocol_names())}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ferkit.bench import format_summary, run_protocol

    try:
        summary = run_protocol(args.protocol, args.root, args.out, list(args.set or []),
                               only=args.only, dry_run=args.dry_run, report_only=args.report_only)
    except KeyboardInterrupt as err:
        err.args = ("re-run the same command to continue: finished runs are kept and the "
                    "interrupted run resumes from its last finished epoch, if one was saved",)
        raise
    print(format_summary(summary))
    return 1 if summary["failed"] else 0


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    """The data flags ``eval`` and ``datasets`` share: a recipe, overrides and shortcuts."""
    p.add_argument("--config", help="recipe YAML: its data section is used")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override, e.g. --set data.options.variant=original (repeatable)")
    p.add_argument("--dataset", help="shortcut for --set data.dataset=...")
    p.add_argument("--num-classes", help="shortcut for --set data.num_classes=...")


def add_video_flags(p: argparse.ArgumentParser) -> None:
    """``ferkit predict``'s options for videos and the webcam (docs/video.md)."""
    g = p.add_argument_group("videos (pip install \"ferkit[video]\"; see docs/video.md)")
    rate = g.add_mutually_exclusive_group()
    rate.add_argument("--every", type=int, default=1, metavar="N", help="process every N-th frame")
    rate.add_argument("--fps", type=float, metavar="RATE", help="process about RATE frames per second")
    g.add_argument("--start", type=float, default=0.0, metavar="SEC", help="start at SEC seconds")
    g.add_argument("--end", type=float, metavar="SEC", help="stop after SEC seconds")
    g.add_argument("--no-track", action="store_true", help="no track ids (faces not linked across frames)")
    g.add_argument("--smooth", metavar="ema:A|window:N", help="smooth each track's probabilities "
                   "over time: exponential with weight A on the newest frame, or the mean of the last "
                   "N frames (default: off)")
    g.add_argument("--track-gap", type=float, default=1.0, metavar="SEC",
                   help="seconds a face may go undetected and keep its track id (default 1)")
    g.add_argument("--summary", metavar="FILE", help="also write the per-track summaries here (JSON lines)")
    g.add_argument("--webcam", type=int, nargs="?", const=0, metavar="INDEX",
                   help="read camera INDEX (default 0) live until Ctrl+C instead of files")


DEVICE_HELP = "torch device: auto (a GPU when there is one, else the CPU), cpu, cuda, cuda:1, mps"


def _add_detector_flags(p: argparse.ArgumentParser) -> None:
    """The face detector's knobs and the test-time flip ``predict`` and ``serve`` share (checked
    by the Predictor)."""
    p.add_argument("--min-face", type=float, metavar="PIXELS",
                   help="smallest face side the detector looks for (default 20; larger is faster)")
    p.add_argument("--det-threshold", type=float, metavar="P",
                   help="face probability a detection needs, in (0, 1) (default 0.7)")
    p.add_argument("--detector-backend", choices=("auto", "torch", "onnx"),
                   help="where the face detector runs (default auto: onnxruntime when installed "
                   "and the device is the CPU, else torch)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="average each face with its mirror image (default: as the model "
                   "recommends; doubles the classifier's work)")


def _detector_options(args: argparse.Namespace) -> dict[str, float | str | bool]:
    """The detector and flip flags given (the Predictor's defaults stand for the others)."""
    given = {"min_face": args.min_face, "det_threshold": args.det_threshold,
             "detector_backend": args.detector_backend, "flip": args.flip}
    return {key: value for key, value in given.items() if value is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferkit", description="Facial expression recognition "
                                     "on imbalanced data.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"ferkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train one run (defaults: built-in synthetic faces)")
    p.add_argument("--config", metavar="RECIPE",
                   help="a recipe: a packaged name (ferkit list shows them, e.g. quickstart) or a "
                   "YAML file of overrides of the defaults")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override, e.g. --set train.epochs=40 (repeatable)")
    p.add_argument("--output-dir", help="shortcut for --set output_dir=... (default: "
                   "runs/<recipe name>/<method.name>, runs/default/<method.name> without --config)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run files already in the output folder (config, checkpoints, "
                   "metrics, results, report, tensorboard/) and train from scratch")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint on a dataset split")
    p.add_argument("checkpoint", help="a ferkit .safetensors checkpoint (e.g. runs/.../best.safetensors)")
    _add_data_flags(p)
    p.add_argument("--root", help="shortcut for --set data.root=...")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="the split to evaluate (default test)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--out", help="folder for the JSON and markdown (default: beside the checkpoint)")
    p.set_defaults(func=_eval)

    p = sub.add_parser(
        "predict", help="expressions of every face in photos and videos (or face crops with --no-detect)",
        description="Detect faces (MTCNN), align each to the training-crop geometry and classify "
        "it; in videos, faces are also tracked across frames (docs/video.md). Exit status: 0 when "
        "at least one image or frame was read (images without a face included), 1 "
        "when no input could be read, 2 for a usage or checkpoint error.")
    p.add_argument("images", nargs="*", help="image and video files, folders and glob patterns")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="search folders' subfolders too (default: only the folder itself; "
                   "subfolders and other files left out are named in the summary line)")
    p.add_argument("-c", "--checkpoint", help="a ferkit .safetensors checkpoint or a .onnx file "
                   "from ferkit export (default: the packaged model)")
    p.add_argument("--format", default="table", choices=("table", "jsonl", "csv"),
                   help="output: a readable table (default), JSON lines or CSV (with landmarks)")
    p.add_argument("--json", action="store_true", help="same as --format jsonl")
    p.add_argument("--no-detect", action="store_true",
                   help="inputs are already face crops: classify each whole image")
    p.add_argument("--prior", default="default", metavar="default|train|uniform|v1,v2,...",
                   help="class prior to assume at deployment (post-hoc logit adjustment; "
                   "default: the one the model recommends, else train = the model as trained)")
    p.add_argument("--tau", type=float, default=None, help="strength of the prior adjustment "
                   "(default: the model's recommended one for --prior default, else 1)")
    p.add_argument("--annotate", metavar="DIR", help="write a copy of each photo (and an MP4 of each "
                   "video) with boxes and labels")
    p.add_argument("--cam-dir", help="also save attention maps of every face here")
    p.add_argument("--cam-mirror", action="store_true",
                   help="attention maps with the mirrored face as a second row (the paper's Figure 4)")
    p.add_argument("--batch-size", type=_positive(int), default=8,
                   help="images decoded at a time and faces per forward pass (bounds memory)")
    p.add_argument("--max-megapixels", type=_positive(float), default=DEFAULT_MAX_PIXELS / 1e6,
                   help="decode budget: larger images are skipped, checked from their header "
                   f"(default {DEFAULT_MAX_PIXELS / 1e6:g}, about "
                   f"{3 * DEFAULT_MAX_PIXELS / 1e6:.0f} MB decoded)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--backend", choices=("torch", "onnx"),
                   help="onnx: onnxruntime (a checkpoint is exported on the fly; needs pip install "
                   "\"ferkit[onnx]\"); default: onnx for a .onnx file, else torch")
    p.add_argument("--threads", type=_positive(int),
                   help="onnxruntime threads (default: all cores)")
    _add_detector_flags(p)
    add_video_flags(p)
    p.set_defaults(func=_predict, checkpoint=None)

    p = sub.add_parser("export", help="export a checkpoint to one ONNX file (with a parity check)")
    p.add_argument("checkpoint", nargs="?",
                   help="a ferkit .safetensors checkpoint (default: the packaged model)")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest accepted |logit difference| against torch (default 1e-4)")
    p.add_argument("--parity-images", type=_positive(int), default=32,
                   help="crops the parity check uses")
    p.add_argument("--exporter", default="dynamo", choices=("dynamo", "torchscript"),
                   help="torch exporter (torchscript is deprecated in torch >= 2.9)")
    p.set_defaults(func=_export)

    p = sub.add_parser("serve", help="local web page and JSON endpoint for photos "
                       "(needs pip install \"ferkit[serve]\")")
    p.add_argument("checkpoint", nargs="?", help="checkpoint or .onnx file (default: the packaged "
                   "model)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this "
                   "machine only)")
    p.add_argument("--port", type=int, default=8000, help="port of the page (default 8000)")
    p.add_argument("--backend", choices=("torch", "onnx"),
                   help="default: onnx for a .onnx file, else torch")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--threads", type=_positive(int),
                   help="onnxruntime threads (default: all cores)")
    p.add_argument("--max-upload-mb", type=_positive(float), default=10.0,
                   help="upload size cap (MB)")
    p.add_argument("--max-megapixels", type=_positive(float), default=SERVE_MAX_PIXELS / 1e6,
                   help="decode budget per photo, checked from its header (default "
                   f"{SERVE_MAX_PIXELS / 1e6:g}); at most {SERVE_DECODE_SLOTS} photos decode at once")
    _add_detector_flags(p)
    p.set_defaults(func=_serve)

    p = sub.add_parser("datasets", help="check a dataset root and print counts per split/class")
    p.add_argument("root", nargs="?", help="shortcut for --set data.root=...")
    _add_data_flags(p)
    p.add_argument("--imbalance-factor", help="shortcut for --set data.imbalance_factor=...")
    p.set_defaults(func=_datasets)

    p = sub.add_parser(
        "config", help="every config key with its type, default and help; with --config or "
        "--set: check that configuration and print it resolved",
        description="Without --config and --set: every config key with its type, default and "
        "help, then each method's parameters and each dataset's options. With them: the "
        "configuration ferkit train would run, checked as ferkit train checks it (every problem "
        "at once, exit status 2) and printed as YAML.")
    p.add_argument("--keys-only", action="store_true",
                   help="leave out the per-method parameters and per-dataset options")
    p.add_argument("--config", metavar="RECIPE", help="a recipe to check: a packaged name or a "
                   "YAML file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override to check, e.g. --set method.name=mek (repeatable)")
    p.set_defaults(func=_config)

    p = sub.add_parser("bench", help="run a benchmark protocol (resumable) and write result tables")
    p.add_argument("protocol", help="protocol YAML file, or a packaged protocol: "
                   f"{', '.join(protocol_names())}")
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

    p = sub.add_parser("list", help="datasets, backbones, methods, recipes and benchmark protocols")
    p.set_defaults(func=_list)
    return parser


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def _unknown_command(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """The error line for a first word that is no command (with the closest one), else None."""
    from ferkit.registry import suggest

    commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    word = next((a for a in argv if not a.startswith("-")), None)
    if word is None or word in commands:
        return None
    return (f"ferkit: '{word}' is not a command.{suggest(word, list(commands))} Commands: "
            f"{', '.join(commands)} (ferkit --help says what each does)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # bare `ferkit`: what it can do, not an error
        parser.print_help()
        return 0
    unknown = _unknown_command(parser, argv)
    if unknown and not {"-h", "--help", "--version"} & set(argv):
        print(unknown, file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        return args.func(args)
    except FerkitError as err:  # the user's to fix: one line (-v adds the traceback); others are bugs
        if args.verbose:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        detail = str(err.args[0]) if err.args else "stopped before finishing"
        print(f"{what}: {detail}", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    finally:
        if in_main_thread and previous is not None:
            signal.signal(signal.SIGTERM, previous)
