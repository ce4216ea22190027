"""ferkit: facial expression recognition on imbalanced data.

Public API: :func:`train`, :func:`evaluate`, :class:`Predictor`, :func:`load_config`, and the
registries of datasets, backbones and methods.
"""

from ferkit._version import __version__
from ferkit.api import evaluate, train
from ferkit.config import RunConfig, load_config
from ferkit.data import DATASETS
from ferkit.inference import Predictor
from ferkit.methods import METHODS
from ferkit.models import BACKBONES

__all__ = ["BACKBONES", "DATASETS", "METHODS", "Predictor", "RunConfig", "__version__",
           "evaluate", "load_config", "train"]
