"""ferkit: facial expression recognition on imbalanced data.

Public API: :func:`train`, :func:`evaluate`, :class:`Predictor`, :func:`load_config`, and the
registries of datasets, backbones and methods.
"""

__version__ = "0.1.0"

from ferkit.api import evaluate, train  # noqa: E402
from ferkit.config import RunConfig, load_config  # noqa: E402
from ferkit.data import DATASETS  # noqa: E402
from ferkit.inference import Predictor  # noqa: E402
from ferkit.methods import METHODS  # noqa: E402
from ferkit.models import BACKBONES  # noqa: E402

__all__ = ["BACKBONES", "DATASETS", "METHODS", "Predictor", "RunConfig", "__version__",
           "evaluate", "load_config", "train"]
