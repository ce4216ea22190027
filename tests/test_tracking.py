"""The tracker, the smoother and the per-track summary on hand-made boxes and probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.inference.results import FaceResult
from ferkit.inference.tracking import (
    Smoothing,
    Tracker,
    TrackLog,
    TrackSmoother,
    centre_shift,
    format_summary,
    iou,
)


def box(x: float, y: float = 0.0, size: float = 10.0) -> tuple[float, float, float, float]:
    return (x, y, x + size, y + size)


def test_iou_and_centre_shift_by_hand() -> None:
    assert iou(box(0), box(5)) == pytest.approx(50 / 150)
    assert iou(box(0), box(10)) == 0.0 and iou(box(0), box(0)) == 1.0
    assert centre_shift(box(0), box(30, 40)) == pytest.approx(50 / 10)


def test_new_tracks_numbered_left_to_right_and_kept() -> None:
    tracker = Tracker()
    assert tracker.update([box(100), box(0), box(50)], 0.0) == [3, 1, 2]
    assert tracker.update([box(2), box(52), box(101)], 0.1) == [1, 2, 3]
    assert tracker.update([], 0.2) == [] and tracker.active_ids() == {1, 2, 3}


def test_gap_tolerance_is_in_seconds() -> None:
    tracker = Tracker(max_gap=0.5)
    assert tracker.update([box(0)], 0.0) == [1]
    assert tracker.update([box(0)], 0.5) == [1]  # unseen for exactly max_gap: continues
    assert tracker.update([box(0)], 1.01) == [2]  # unseen for longer: a new face
    assert tracker.active_ids() == {2}


def test_velocity_carries_a_track_through_an_occlusion() -> None:
    tracker = Tracker(max_shift=0.5)
    for step in range(3):
        assert tracker.update([box(5 * step)], 0.1 * step) == [1]  # 50 px/s
    # hidden for 0.2 s, it reappears where its motion puts it, 1.5 box sizes from where it was seen
    assert tracker.update([box(25)], 0.5) == [1]
    # a face at the old place is someone else
    assert tracker.update([box(30), box(10)], 0.6) == [1, 2]
    # without the motion seen before, the same reappearance is a new face
    still = Tracker(max_shift=0.5)
    assert still.update([box(10)], 0.2) == [1] and still.update([box(25)], 0.5) == [2]


def test_reach_grows_with_the_time_unseen() -> None:
    """Without a velocity yet, a face may have moved max_shift + max_speed * elapsed box sizes."""
    sparse = Tracker(max_shift=1.0, max_speed=2.0)
    assert sparse.update([box(0)], 0.0) == [1]
    assert sparse.update([box(21)], 0.6) == [1]  # 2.1 sizes after 0.6 s: within 1 + 2 * 0.6
    dense = Tracker(max_shift=1.0, max_speed=2.0)
    assert dense.update([box(0)], 0.0) == [1]
    assert dense.update([box(21)], 0.1) == [2]  # the same jump in 0.1 s: beyond 1 + 2 * 0.1


def test_greedy_matching_prefers_overlap() -> None:
    tracker = Tracker()
    tracker.update([box(0), box(12)], 0.0)
    # both detections are within reach of both tracks; each keeps the one it overlaps most
    assert tracker.update([box(11), box(1)], 0.1) == [2, 1]


@pytest.mark.parametrize("text", ["ema:0", "ema:1.5", "window:0", "window:2.5", "median:3", "ema"])
def test_smoothing_text_is_checked(text: str) -> None:
    with pytest.raises(ValueError, match=rf"smoothing '{text}' is not valid: use 'ema:ALPHA' "
                                         r"\(0 < ALPHA <= 1\) or 'window:N' \(N >= 1 frames\), or 'none'"):
        Smoothing.parse(text)


def test_smoothers_by_hand() -> None:
    assert Smoothing.parse(None) is None and Smoothing.parse("none") is None
    p1, p2, p3 = np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([0.5, 0.5])
    ema = TrackSmoother(Smoothing.parse("ema:0.25"))
    assert ema(1, p1).tolist() == [1.0, 0.0]
    assert ema(1, p2).tolist() == [0.75, 0.25]
    assert ema(2, p2).tolist() == [0.0, 1.0]  # each track has its own state
    assert ema(1, p3).tolist() == [0.25 * 0.5 + 0.75 * 0.75, 0.25 * 0.5 + 0.75 * 0.25]
    window = TrackSmoother(Smoothing.parse("window:2"))
    assert window(1, p1).tolist() == [1.0, 0.0]
    assert window(1, p2).tolist() == [0.5, 0.5]
    assert window(1, p3).tolist() == [0.25, 0.75]
    window.keep_only({2})
    assert window(1, p2).tolist() == [0.0, 1.0]  # an ended track starts afresh


def test_summary_by_hand() -> None:
    log = TrackLog(["happy", "sad", "calm"])
    labels = ["happy", "sad", "happy", "happy"]
    def face(track: int | None, label: str) -> FaceResult:
        return FaceResult(label, 1.0, {label: 1.0}, track=track)

    for frame, label in enumerate(labels):
        log.add(2 * frame, 0.2 * frame, [face(1, label), face(None, "sad")])
    log.add(9, 0.9, [face(4, "calm")])
    rows = log.summary()
    assert rows[0] == {"track": 1, "first_frame": 0, "last_frame": 6, "start": 0.0, "end": 0.6,
                       "duration": 0.6, "frames": 4, "dominant": "happy",
                       "shares": {"happy": 0.75, "sad": 0.25, "calm": 0.0}}
    assert rows[1]["track"] == 4 and rows[1]["duration"] == 0.0 and rows[1]["dominant"] == "calm"
    assert format_summary("v.mp4", rows).splitlines() == [
        "v.mp4: 2 tracks",
        "  track   1:     0.00s to     0.60s (4 frames), mostly happy (happy 75%, sad 25%)",
        "  track   4:     0.90s to     0.90s (1 frame), mostly calm (calm 100%)"]
    assert format_summary("v.mp4", []) == "v.mp4: no face tracked"
