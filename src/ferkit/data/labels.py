"""Canonical expression classes and every dataset's label map: the one place label order is defined.

ferkit's canonical order is RAF-DB's (the order of the paper's tables):
Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral (+ Contempt as the 8th class).
Every dataset maps its raw labels into this order, so a class index means the same thing everywhere.
"""

from __future__ import annotations

CANONICAL_7: tuple[str, ...] = (
    "surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral",
)
CANONICAL_8: tuple[str, ...] = CANONICAL_7 + ("contempt",)

# Short names used in tables (RAF-DB paper style).
SHORT_NAMES: dict[str, str] = {
    "surprise": "Sur", "fear": "Fea", "disgust": "Dis", "happiness": "Hap",
    "sadness": "Sad", "anger": "Ang", "neutral": "Neu", "contempt": "Con",
}

# RAF-DB basic: labels 1..7 in list_patition_label.txt.
RAFDB_RAW: dict[int, str] = {
    1: "surprise", 2: "fear", 3: "disgust", 4: "happiness", 5: "sadness", 6: "anger", 7: "neutral",
}

# FERPlus vote columns of fer2013new.csv, in file order (unknown and NF are not expressions).
FERPLUS_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
    "unknown", "NF",
)

# AffectNet expression codes (official CSV column `expression`): 0..7 are the 8 emotions;
# 8 none, 9 uncertain, 10 no-face are not expressions.
AFFECTNET_RAW: dict[int, str] = {
    0: "neutral", 1: "happiness", 2: "sadness", 3: "surprise", 4: "fear", 5: "disgust",
    6: "anger", 7: "contempt",
}

# Aliases accepted in generic CSV / ImageFolder datasets.
ALIASES: dict[str, str] = {
    "happy": "happiness", "sad": "sadness", "angry": "anger", "surprised": "surprise",
    "fearful": "fear", "disgusted": "disgust", "neutral": "neutral", "contempt": "contempt",
}


def class_names(num_classes: int) -> tuple[str, ...]:
    """Canonical class names for the 7- or 8-class setting."""
    if num_classes == 7:
        return CANONICAL_7
    if num_classes == 8:
        return CANONICAL_8
    raise ValueError(f"num_classes must be 7 or 8 for expression data, got {num_classes}")


def canonical_index(name: str, num_classes: int) -> int:
    """Index of an expression name (or alias) in the canonical order.

    Raises:
        KeyError: the name is not an expression of the `num_classes` setting.
    """
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    names = class_names(num_classes)
    if key not in names:
        raise KeyError(f"'{name}' is not one of the {num_classes} classes {list(names)}")
    return names.index(key)
