"""Everything after training, apart from it: the predictor (torch / onnx backends), face detection
and landmarks, alignment to the training-crop geometry, the deployment prior, export and serving.
"""

from ferkit.inference.align import align_face, similarity_transform
from ferkit.inference.annotate import annotate
from ferkit.inference.faces import MTCNN, Face
from ferkit.inference.predictor import Predictor
from ferkit.inference.prior import adjust_logits
from ferkit.inference.results import FaceResult, ImageResult, Prediction

__all__ = ["MTCNN", "Face", "FaceResult", "ImageResult", "Prediction", "Predictor", "adjust_logits",
           "align_face", "annotate", "similarity_transform"]
