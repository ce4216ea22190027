"""The live webcam mode of ``ferkit serve``: tracked faces per session through the JSON endpoint,
and the page in headless Chromium with a fake camera playing a video of the astronaut."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.test_serve import client, live_server, png_bytes, predictor, skimage_data  # noqa: F401

from ferkit.inference.results import FaceResult
from ferkit.inference.tracking import LiveTracks


def post(client, image: bytes, live: str | None):  # noqa: F811
    query = f"?live={live}" if live is not None else ""
    return client.post(f"/api/predict{query}", content=image, headers={"content-type": "image/png"})


def test_live_frames_carry_track_ids_per_session(client) -> None:  # noqa: F811
    astronaut = png_bytes(skimage_data.astronaut())
    shifted = png_bytes(np.roll(skimage_data.astronaut(), 12, axis=1))  # the face moved 12 px
    answers = [post(client, image, "tab-1").json() for image in (astronaut, shifted, astronaut)]
    assert [[face["track"] for face in answer["faces"]] for answer in answers] == [[1], [1], [1]]
    assert all(face["attention"] is None for answer in answers for face in answer["faces"])
    centres = [(face["box"][0] + face["box"][2]) / 2 for face in (a["faces"][0] for a in answers)]
    assert centres[1] - centres[0] == pytest.approx(12, abs=4)  # the moved face, found moved
    # another session has its own ids; a photo (no live) has no track and keeps its attention map
    assert post(client, astronaut, "tab-2").json()["faces"][0]["track"] == 1
    photo = post(client, astronaut, None).json()["faces"][0]
    assert photo["track"] is None and photo["attention"].startswith("data:image/png;base64,")


def test_bad_live_session_is_refused(client) -> None:  # noqa: F811
    response = post(client, png_bytes(skimage_data.astronaut()), "a%20b")
    assert response.status_code == 400
    assert response.json() == {"error": "live session 'a b' is not valid: use 1 to 64 letters, digits, "
                                        "'-' or '_'"}


def test_live_sessions_are_bounded_and_counted_in_frames() -> None:
    tracks = LiveTracks(max_sessions=2, max_missed=2)

    def frame(session: str, *xs: float) -> list[int | None]:
        faces = [FaceResult("happiness", 1.0, {"happiness": 1.0}, box=(x, 0, x + 10, 10)) for x in xs]
        tracks.assign(session, faces)
        return [face.track for face in faces]

    assert frame("a", 0) == [1] and frame("b", 50) == [1] and list(tracks.sessions) == ["a", "b"]
    assert frame("a") == [] and frame("a") == [] and frame("a", 1) == [1]  # missed twice: kept
    assert frame("a") == [] and frame("a") == [] and frame("a") == [] and frame("a", 1) == [2]
    frame("c", 0)  # a third session: "b", the least recently used, goes
    assert list(tracks.sessions) == ["a", "c"]


# ---- the page with a fake camera -------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium"


def write_y4m(path: Path, frames: list[np.ndarray], rate: int = 10) -> Path:
    """Frames as a YUV4MPEG2 file (4:2:0, full-range JPEG YCbCr), which Chromium's fake camera
    plays in a loop."""
    height, width = frames[0].shape[:2]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{rate}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            y, cb, cr = Image.fromarray(frame).convert("YCbCr").split()
            half = (width // 2, height // 2)
            out.write(b"FRAME\n" + y.tobytes() + cb.resize(half, Image.BILINEAR).tobytes()
                      + cr.resize(half, Image.BILINEAR).tobytes())
    return path


@pytest.fixture(scope="module")
def camera_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(f"headless browser test needs chromium and chromedriver on PATH ({INSTALL})")
    webdriver = pytest.importorskip("selenium.webdriver", reason=f"needs selenium ({INSTALL})")
    scene = np.full((480, 640, 3), 120, np.uint8)
    scene[100:400, 150:450] = np.asarray(Image.fromarray(skimage_data.astronaut()[0:300, 100:400]))
    frames = [np.roll(scene, 4 * i, axis=1) for i in range(10)]
    video = write_y4m(tmp_path_factory.mktemp("camera") / "astronaut.y4m", frames)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                     f"--use-file-for-fake-video-capture={video}", "--window-size=1280,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    yield driver
    driver.quit()


def test_live_page_draws_tracked_faces_over_the_fake_camera(camera_browser, predictor, tmp_path) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = camera_browser
    body = lambda: driver.find_element(By.TAG_NAME, "body")  # noqa: E731
    with live_server(predictor) as url:
        driver.get(url)
        WebDriverWait(driver, 20).until(lambda d: body().get_attribute("data-state") == "ready")
        driver.find_element(By.ID, "live-button").click()
        WebDriverWait(driver, 60).until(lambda d: int(body().get_attribute("data-live-frames") or 0) >= 5)
        video = driver.find_element(By.ID, "live-video")
        assert driver.execute_script("return arguments[0].videoWidth", video) == 640
        # one snapshot of the overlay (the page redraws it with every answer)
        boxes = driver.execute_script(
            "return [...document.querySelectorAll('#live-frame .live-box')].map("
            "(box) => [box.getBoundingClientRect().width, box.textContent])")
        assert len(boxes) == 1 and boxes[0][0] > 40
        label = boxes[0][1]
        assert label.startswith("#1 ") and label.split()[1] in predictor.class_names
        status = driver.find_element(By.ID, "live-status").text
        assert status.startswith("live: 1 face, ") and "frames/s" in status
        driver.save_screenshot(str(tmp_path / "live.png"))
        driver.find_element(By.ID, "live-stop").click()
        assert body().get_attribute("data-live") == "off"
        assert driver.find_elements(By.CSS_SELECTOR, ".live-box") == []
