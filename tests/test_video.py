"""Videos: decoding and frame selection, tracking, smoothing, `ferkit predict` on video files (rows,
summary, annotated video, bad files) and the webcam's error, on a video built from real photos
(tests/video_fixtures.py)."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.test_inference_predict import run_cli
from tests.video_fixtures import (
    B_FROM,
    BOTTOM,
    FRAMES,
    HIDDEN,
    RATE,
    RETURN_FROM,
    face_image,
    scene,
    write_scene,
    write_video,
)

from ferkit.inference.predictor import Predictor
from ferkit.inference.video import VideoOptions, VideoReadError, VideoSource, VideoUnavailable, require_av

av = pytest.importorskip("av", reason='needs the [video] extra: pip install "ferkit[video]"')
pytest.importorskip("skimage.data", reason="scikit-image not installed (dev extra)")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scene(tmp_path_factory.mktemp("video") / "scene.mp4")


@pytest.fixture(scope="module")
def raw_frames(predictor: Predictor, clip: Path) -> list:
    return list(predictor.predict_video(clip))


def face_rows(frames: list) -> list[tuple[int, dict]]:
    return [(frame.index, face) for frame in frames for face in frame.faces]


def test_frames_times_and_tracks(raw_frames: list) -> None:
    assert [f.index for f in raw_frames] == list(range(FRAMES))
    assert [f.time for f in raw_frames] == [round(i / RATE, 6) for i in range(FRAMES)]
    assert raw_frames[0].image.shape == (300, 400, 3)
    upper = [(i, face["track"]) for i, face in face_rows(raw_frames) if face["box"][1] < BOTTOM]
    lower = [(i, face["track"]) for i, face in face_rows(raw_frames) if face["box"][1] >= BOTTOM]
    # face A: one id from entering to leaving, through the two hidden frames
    assert {t for i, t in upper if i < RETURN_FROM} == {1}
    assert not {i for i, _ in upper} & set(HIDDEN)
    assert {i for i, _ in upper if i < RETURN_FROM} >= set(range(6, 28)) - set(HIDDEN)
    # face B: the second id, in every frame from its first one; the face that enters far from
    # where A left is a new track
    assert lower == [(i, 2) for i in range(B_FROM, FRAMES)]
    assert {t for i, t in upper if i >= RETURN_FROM} == {3}
    assert {i for i, _ in upper if i >= RETURN_FROM} == set(range(RETURN_FROM, FRAMES))


def test_every_fps_and_time_range(predictor: Predictor, clip: Path) -> None:
    def indices(**options: object) -> list[tuple[int, float]]:
        return [(f.index, f.time) for f in VideoSource(clip, VideoOptions(**options))]

    assert indices(every=3) == [(i, i / RATE) for i in range(0, FRAMES, 3)]
    # 4 per second from a 10 fps video: the first frame at or after each 0.25 s tick
    assert [i for i, _ in indices(fps=4)] == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28, 30, 33, 35, 38]
    assert indices(start=1.0, end=1.6, every=2) == [(10, 1.0), (12, 1.2), (14, 1.4), (16, 1.6)]
    faces = predictor.predict_video(clip, every=5, track=False)
    assert all(face.track is None for frame in faces for face in frame.faces)
    # every third frame: face A jumps 48 px (about 1.4 box sizes) between processed frames and
    # still keeps one id, through the occlusion; the face entering later is the next id
    sparse = [(f.index, face.track) for f in predictor.predict_video(clip, every=3) for face in f.faces
              if face.box[1] < BOTTOM]
    assert {t for i, t in sparse if i < RETURN_FROM} == {1} and len(sparse) > 5
    assert {t for i, t in sparse if i >= RETURN_FROM} == {3}


@pytest.mark.parametrize("smoothing", ["ema:0.4", "window:3"])
def test_smoothing_matches_a_hand_computation(predictor: Predictor, clip: Path, raw_frames: list,
                                              smoothing: str) -> None:
    names = predictor.class_names
    smoothed = face_rows(list(predictor.predict_video(clip, smoothing=smoothing)))
    raw = face_rows(raw_frames)
    assert [(i, f["track"]) for i, f in smoothed] == [(i, f["track"]) for i, f in raw]
    kind, value = smoothing.split(":")
    history: dict[int, list[np.ndarray]] = {}
    state: dict[int, np.ndarray] = {}
    for (_, raw_face), (_, face) in zip(raw, smoothed):
        probs = np.array([raw_face["probabilities"][n] for n in names])
        track = raw_face["track"]
        history.setdefault(track, []).append(probs)
        if kind == "ema":
            alpha = float(value)
            state[track] = probs if track not in state else alpha * probs + (1 - alpha) * state[track]
            expected = state[track]
        else:
            expected = sum(history[track][-int(value):]) / len(history[track][-int(value):])
        got = np.array([face["probabilities"][n] for n in names])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        assert face["label"] == names[int(expected.argmax())]
        assert face["confidence"] == pytest.approx(expected.max(), abs=1e-12)
    assert any(np.abs(np.array([f["probabilities"][n] for n in names])
                      - np.array([r["probabilities"][n] for n in names])).max() > 1e-4
               for (_, r), (_, f) in zip(raw, smoothed))


@pytest.mark.parametrize(("options", "message"), [
    ({"every": 0}, "every=0: process every N-th frame needs N >= 1"),
    ({"every": 2, "fps": 5.0}, "give either every"),
    ({"start": 3.0, "end": 2.0}, r"start=3.0, end=2.0: need 0 <= start < end"),
    ({"smoothing": "ema:2"}, r"smoothing 'ema:2' is not valid: use 'ema:ALPHA' \(0 < ALPHA <= 1\)"),
    ({"smoothing": "window:3", "track": False}, "smoothing works per track: it needs track=True"),
])
def test_options_are_checked(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VideoOptions(**options)


def bad_videos(folder: Path, clip: Path) -> dict[str, Path]:
    """A damaged MP4 (index first, cut at two thirds), a cut Matroska, an empty and a text file."""
    full = write_video(folder / "faststart.mp4", [scene(i, face_image()) for i in range(FRAMES)],
                       options={"movflags": "+faststart"})
    cut = folder / "cut.mp4"
    cut.write_bytes(full.read_bytes()[:2 * full.stat().st_size // 3])
    mkv = write_video(folder / "full.mkv", [scene(i, face_image()) for i in range(FRAMES)])
    cut_mkv = folder / "cut.mkv"
    cut_mkv.write_bytes(mkv.read_bytes()[:mkv.stat().st_size // 2])
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mov").write_text("not a video")
    return {"cut": cut, "cut_mkv": cut_mkv, "empty": folder / "empty.mp4", "text": folder / "notes.mov"}


def test_damaged_videos_keep_their_frames_then_raise(predictor: Predictor, clip: Path,
                                                     tmp_path: Path) -> None:
    bad = bad_videos(tmp_path, clip)
    for name in ("cut", "cut_mkv"):
        seen = []
        with pytest.raises(VideoReadError, match="truncated") as caught:
            for frame in predictor.predict_video(bad[name], every=2):
                seen.append(frame.index)
        assert seen and seen == list(range(0, 2 * len(seen), 2)) and len(seen) < FRAMES // 2
        assert str(caught.value).startswith(str(bad[name]))
    with pytest.raises(VideoReadError, match="empty.mp4: not a readable video"):
        predictor.predict_video(bad["empty"])
    with pytest.raises(VideoReadError, match="missing.mp4: file not found"):
        predictor.predict_video(tmp_path / "missing.mp4")


@pytest.mark.filterwarnings("ignore:.*synthetic dataset")
def test_cli_video_rows_summary_and_annotated_video(tiny_checkpoint: Path, clip: Path, raw_frames: list,
                                                    tmp_path: Path, capsys) -> None:
    from PIL import Image
    from skimage import data

    folder = tmp_path / "inputs"
    folder.mkdir()
    bad_videos(folder, clip)
    (folder / "scene.mp4").write_bytes(clip.read_bytes())
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    code, out, err = run_cli(["predict", "-c", str(tiny_checkpoint), str(folder), "--format", "csv",
                              "--every", "2", "--annotate", str(tmp_path / "ann"),
                              "--summary", str(tmp_path / "tracks.jsonl")], capsys)
    assert code == 0, err
    table = list(csv.reader(io.StringIO(out)))
    header, rows = table[0], [dict(zip(table[0], row)) for row in table[1:]]
    assert all(len(row) == len(header) for row in table)  # rectangular
    assert header[:7] == ["image", "status", "error", "face", "frame", "time", "track"]
    by_file: dict[str, list[dict]] = {}
    for row in rows:
        by_file.setdefault(Path(row["image"]).name, []).append(row)
    assert list(by_file) == ["astronaut.png", "cut.mkv", "cut.mp4", "empty.mp4", "faststart.mp4",
                             "full.mkv", "notes.mov", "scene.mp4"]
    assert by_file["astronaut.png"][0]["frame"] == "" and by_file["astronaut.png"][0]["track"] == ""
    scene_rows = by_file["scene.mp4"]
    expected = [(frame.index, face["track"]) for frame in raw_frames[::2] for face in frame.faces]
    assert [(int(r["frame"]), int(r["track"])) for r in scene_rows if r["status"] == "ok"] == expected
    assert all(float(r["time"]) == int(r["frame"]) / RATE for r in scene_rows)
    assert {int(r["frame"]) for r in scene_rows} == set(range(0, FRAMES, 2))
    # bad files: reported like a bad photo, after the rows they gave
    assert by_file["empty.mp4"] == [by_file["empty.mp4"][0]]
    assert by_file["empty.mp4"][0]["status"] == "error"
    assert by_file["empty.mp4"][0]["error"].startswith("not a readable video")
    assert by_file["notes.mov"][0]["error"].startswith("not a readable video")
    for name in ("cut.mp4", "cut.mkv"):
        assert "truncated" in by_file[name][-1]["error"]
        assert len(by_file[name]) > 1 and by_file[name][0]["frame"] == "0"
    for name in ("empty.mp4", "notes.mov", "cut.mp4", "cut.mkv"):
        assert f"{folder / name}: skipped: " in err
    # the per-track summary: stderr in CSV mode, and as JSON lines in --summary
    summary = [json.loads(line) for line in (tmp_path / "tracks.jsonl").read_text().splitlines()]
    scene_summary = [s for s in summary if Path(s["video"]).name == "scene.mp4"]
    assert [s["track"] for s in scene_summary] == [1, 2, 3]
    for track in scene_summary:
        mine = [r for r in scene_rows if r["track"] == str(track["track"])]
        assert track["frames"] == len(mine) and track["first_frame"] == int(mine[0]["frame"])
        assert track["duration"] == pytest.approx(float(mine[-1]["time"]) - float(mine[0]["time"]))
        labels = [r["label"] for r in mine]
        assert track["shares"][track["dominant"]] == pytest.approx(max(map(labels.count, labels)) / len(mine),
                                                                   abs=1e-4)
        assert sum(track["shares"].values()) == pytest.approx(1, abs=1e-3)
    assert f"{folder / 'scene.mp4'}: 3 tracks" in err
    # the annotated video: H.264 in MP4, one frame per processed frame, at their times
    with av.open(str(tmp_path / "ann" / "scene.mp4")) as written:
        stream = written.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (400, 300)
        frames = list(written.decode(stream))
    assert [round(f.time, 3) for f in frames] == [i / RATE for i in range(0, FRAMES, 2)]
    drawn = frames[10].to_ndarray(format="rgb24").astype(int)
    yellow = (drawn[..., 0] > 200) & (drawn[..., 1] > 180) & (drawn[..., 2] < 90)
    assert yellow.sum() > 100  # the boxes and labels are drawn
    # one file per readable input, a second of a name with _1 (cut.mkv and cut.mp4)
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == [
        "astronaut.png", "cut.mp4", "cut_1.mp4", "faststart.mp4", "full.mp4", "scene.mp4"]


@pytest.mark.filterwarnings("ignore:.*synthetic dataset")
def test_cli_table_and_jsonl_on_a_video(tiny_checkpoint: Path, clip: Path, capsys) -> None:
    code, out, err = run_cli(["predict", "-c", str(tiny_checkpoint), str(clip), "--start", "1",
                              "--end", "1.2"], capsys)
    lines = out.splitlines()
    assert code == 0, err
    assert lines[1].endswith(f"{clip} 1.00s") and lines[1].split()[0] in ("#1", "#2")
    assert lines[-3] == f"{clip}: 2 tracks"
    assert lines[-2].startswith("  track   1:     1.00s to     1.20s (3 frames), mostly ")
    code, out, _ = run_cli(["predict", "-c", str(tiny_checkpoint), str(clip), "--fps", "2", "--end", "1",
                            "--json", "--no-track"], capsys)
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["frame"], r["time"]) for r in records if r["face"] in (None, 1)] == [(0, 0.0), (5, 0.5),
                                                                                   (10, 1.0)]
    assert all(r.get("track") is None for r in records)


@pytest.mark.filterwarnings("ignore:.*synthetic dataset")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux camera paths")
def test_webcam_missing_is_a_clear_error(tiny_checkpoint: Path, capsys) -> None:
    code, _, err = run_cli(["predict", "-c", str(tiny_checkpoint), "--webcam", "7"], capsys)
    present = ", ".join(sorted(str(p) for p in Path("/dev").glob("video*"))) or "none"
    assert code == 2
    assert err == (f"error: webcam 7: no camera at /dev/video7 (video devices here: {present}); connect "
                   "a webcam, pick another with --webcam INDEX, or pass a video file\n")
    code, _, err = run_cli(["predict", "-c", str(tiny_checkpoint), "clip.mp4", "--webcam"], capsys)
    assert code == 2
    assert err == "error: --webcam reads a camera instead of files; leave out clip.mp4 (or --webcam)\n"


@pytest.mark.filterwarnings("ignore:.*synthetic dataset")
def test_without_pyav_the_message_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path,
                                                      clip: Path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(VideoUnavailable, match=r'pip install "ferkit\[video\]"'):
        require_av()
    code, _, err = run_cli(["predict", "-c", str(tiny_checkpoint), str(clip)], capsys)
    assert code == 2 and 'error: reading videos needs PyAV; install the optional extra: pip install ' \
        '"ferkit[video]"' in err


def test_frames_stream_in_bounded_batches(predictor: Predictor) -> None:
    """An endless stream is processed as it comes: at most ``batch_size`` frames are held ahead
    of the results handed out, whatever the length."""
    from ferkit.inference.video import Frame, predict_frames

    pulled = 0

    def endless():
        nonlocal pulled
        image = np.zeros((24, 32, 3), np.uint8)
        while True:
            pulled += 1
            yield Frame(pulled - 1, (pulled - 1) / RATE, image)

    stream = predict_frames(predictor, endless(), detect=False, batch_size=4)
    for count in range(1, 31):
        result = next(stream)
        assert result.index == count - 1 and pulled - count < 4
        assert [face.track for face in result.faces] == [1]  # the whole frame, one track
