"""Everything after training, apart from it: the predictor (torch / onnx backends), face detection
and landmarks, alignment to the training-crop geometry, the deployment prior, export and serving.
"""

from ferkit.inference.predictor import Predictor

__all__ = ["Predictor"]
