"""The ferkit serve page in a real headless browser (Debian's chromium + chromium-driver, driven
by selenium; nothing is downloaded). Skips with the install command when they are absent.

Checked: upload with the keyboard alone, the ``hidden`` attribute honoured, a photo without a
face, a many-face photo (numbers in reading order on the picture and in the summary table,
every label on the photo), the layout at 360 px and the favicon.

To refresh the README's pictures (a wide and a phone-width window):
FERKIT_DEMO_SCREENSHOT=docs/images PYTHONPATH=src python -m pytest tests/test_serve_browser.py
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.test_serve import NAMES, live_server, skimage_data, tiny_predictor

from ferkit.inference import Predictor
from ferkit.inference.predictor import pretrained_path

INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(f"headless browser test needs chromium and chromedriver on PATH ({INSTALL})",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason=f"needs selenium ({INSTALL})")

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WIDE, NARROW = (1280, 860), (360, 780)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--hide-scrollbars"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    driver.set_window_size(*WIDE)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page_predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    """The shipped model when the checkout has it (a real answer for the screenshot), else the
    tiny untrained one."""
    if pretrained_path().is_file():
        return Predictor.from_pretrained(device="cpu")
    return tiny_predictor(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def server(page_predictor: Predictor) -> Iterator[str]:
    with live_server(page_predictor) as url:
        yield url


def state(driver: object) -> str:
    return driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")


def open_page(driver: object, url: str) -> None:
    driver.get(url)
    WebDriverWait(driver, 20).until(lambda d: state(d) == "ready")


def choose(driver: object, photo: Path) -> str:
    """Give ``photo`` to the file input (what the file chooser does), wait for the answer."""
    driver.find_element(By.ID, "file-input").send_keys(str(photo))
    # generous: the first answer may build the detector (its ONNX export) on a loaded machine
    WebDriverWait(driver, 300).until(lambda d: state(d) in ("done", "error"))
    return state(driver)


def upload(driver: object, url: str, photo: Path) -> str:
    """Load the page, pick ``photo``, wait for the answer; returns the page state."""
    open_page(driver, url)
    return choose(driver, photo)


def group_photo(side: int, columns: int, rows: int) -> np.ndarray:
    """``columns`` x ``rows`` astronauts of ``side`` px: a many-face photo (one face per tile,
    near the tile's top edge, so the top row's labels have no room above their boxes)."""
    tile = Image.fromarray(skimage_data.astronaut()).resize((side, side))
    canvas = Image.new("RGB", (side * columns, side * rows), (128, 128, 128))
    for r in range(rows):
        for c in range(columns):
            canvas.paste(tile, (c * side, r * side))
    return np.asarray(canvas)


def rect(driver: object, element: object) -> dict[str, float]:
    return driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", element)


def save_screenshot(driver: object, name: str) -> None:
    """To ``$FERKIT_DEMO_SCREENSHOT/name`` when that folder is set (the README's pictures)."""
    target = os.environ.get("FERKIT_DEMO_SCREENSHOT")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(target) / name))


def test_keyboard_only_upload(browser: object, server: str, page_predictor: Predictor,
                              tmp_path: Path) -> None:
    photo = tmp_path / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    open_page(browser, server)
    # nothing of the result shows before a photo is chosen (the `hidden` attribute wins)
    assert not browser.find_element(By.ID, "result").is_displayed()
    assert not browser.find_element(By.ID, "photo").is_displayed()
    # the first Tab reaches the drop zone; Enter and Space open the file chooser
    browser.execute_script("window.opened = 0; document.getElementById('file-input')"
                           ".addEventListener('click', (e) => { window.opened += 1; e.preventDefault(); });")
    ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.get_attribute("id") == "drop-zone"
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    ActionChains(browser).send_keys(Keys.SPACE).perform()
    assert browser.execute_script("return window.opened") == 2
    assert browser.execute_script("return window.scrollY") == 0  # Space did not scroll instead
    # the input is out of sight but not display:none (assistive technology and the chooser see it)
    assert browser.find_element(By.ID, "file-input").value_of_css_property("display") != "none"
    assert choose(browser, photo) == "done"
    boxes = browser.find_elements(By.CSS_SELECTOR, "#photo-frame .face-box")
    assert len(boxes) == 1 and boxes[0].is_displayed()
    assert boxes[0].size["width"] > 40 and boxes[0].size["height"] > 40
    label = browser.find_element(By.CSS_SELECTOR, ".face-label").text
    assert label.startswith("1: ") and label.split()[1] in page_predictor.class_names
    assert len(browser.find_elements(By.CSS_SELECTOR, ".face-card .bar-row")) == len(NAMES)
    overlay = browser.find_element(By.CSS_SELECTOR, ".face-card img.attention")
    assert browser.execute_script("return arguments[0].naturalWidth", overlay) == 112
    assert browser.find_element(By.ID, "legend").is_displayed()
    assert not browser.find_element(By.ID, "summary").is_displayed()  # one face: no table
    assert browser.find_element(By.ID, "status").text.startswith("1 face found")
    # the webcam button shows only where the browser has a camera API (headless Chromium has)
    has_camera = browser.execute_script("return !!(navigator.mediaDevices && "
                                        "navigator.mediaDevices.getUserMedia)")
    assert browser.find_element(By.ID, "webcam-button").is_displayed() == has_camera
    assert not browser.find_element(By.ID, "webcam").is_displayed()


def test_no_face_and_bad_file(browser: object, server: str, tmp_path: Path) -> None:
    coffee, broken = tmp_path / "coffee.png", tmp_path / "broken.png"
    Image.fromarray(skimage_data.coffee()).save(coffee)
    broken.write_bytes(b"not an image at all")
    assert upload(browser, server, coffee) == "done"  # a normal answer, not an error
    status = browser.find_element(By.ID, "status")
    assert status.text.startswith("No face found in the photo")
    assert "error" not in status.get_attribute("class")
    assert browser.find_element(By.ID, "photo").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, ".face-box") == []
    assert not browser.find_element(By.ID, "face-details").is_displayed()
    # an unreadable file: the message, and no (broken or stale) photo
    assert choose(browser, broken) == "error"
    assert browser.find_element(By.ID, "status").text.startswith("the upload is not a readable image")
    assert not browser.find_element(By.ID, "result").is_displayed()


def test_many_faces(browser: object, server: str, tmp_path: Path) -> None:
    photo = tmp_path / "group.png"
    Image.fromarray(group_photo(200, 4, 2)).save(photo)
    assert upload(browser, server, photo) == "done"
    assert browser.find_element(By.ID, "status").text.startswith("8 faces found")
    labels = browser.find_elements(By.CSS_SELECTOR, "#photo-frame .face-label")
    assert [label.text for label in labels] == [str(n) for n in range(1, 9)]  # numbers only
    # numbered in reading order: the top row 1-4 left to right, then the bottom row 5-8
    boxes = [rect(browser, box) for box in browser.find_elements(By.CSS_SELECTOR, ".face-box")]
    assert all(boxes[i]["left"] < boxes[i + 1]["left"] for i in (0, 1, 2, 4, 5, 6))
    assert max(b["top"] for b in boxes[:4]) < min(b["top"] for b in boxes[4:])
    # every label on the photo, the top row's inside their boxes
    photo_rect = rect(browser, browser.find_element(By.ID, "photo"))
    for label in labels:
        r = rect(browser, label)
        assert photo_rect["left"] <= r["left"] and r["right"] <= photo_rect["right"] + 0.5
        assert photo_rect["top"] <= r["top"] and r["bottom"] <= photo_rect["bottom"] + 0.5
    rows = browser.find_elements(By.CSS_SELECTOR, "#summary tbody tr")
    assert browser.find_element(By.ID, "summary").is_displayed() and len(rows) == 8
    assert [row.find_element(By.TAG_NAME, "td").text for row in rows] == [str(n) for n in range(1, 9)]
    details = browser.find_element(By.ID, "face-details")
    assert details.get_attribute("open") is None  # the 8 cards are folded away
    save_screenshot(browser, "serve_demo_group.png")


def test_layout_from_phone_to_wide(browser: object, server: str, page_predictor: Predictor,
                                   tmp_path: Path) -> None:
    photo = tmp_path / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    try:
        for size, name in ((WIDE, "serve_demo.png"), (NARROW, "serve_demo_phone.png")):
            browser.set_window_size(*size)
            assert upload(browser, server, photo) == "done"
            width = browser.execute_script("return document.documentElement.clientWidth")
            scroll = browser.execute_script("return document.documentElement.scrollWidth")
            assert scroll <= width, f"sideways scrolling at {size[0]} px"
            label = rect(browser, browser.find_element(By.CSS_SELECTOR, ".face-label"))
            assert 0 <= label["left"] and label["right"] <= width
            save_screenshot(browser, name)
    finally:
        browser.set_window_size(*WIDE)
    # the favicon is served (no 404 in the browser's console)
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not [m for m in errors if "favicon" in m or " 404 " in m], errors
