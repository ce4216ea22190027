"""The ferkit serve page in a real headless browser (Debian's chromium + chromium-driver, driven
by selenium; nothing is downloaded). Skips with the install command when they are absent.

To refresh the README's picture: FERKIT_DEMO_SCREENSHOT=docs/images/serve_demo.png
PYTHONPATH=src python -m pytest tests/test_serve_browser.py
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

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

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,860", "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page_predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    """The shipped model when the checkout has it (a real answer for the screenshot), else the
    tiny untrained one."""
    if pretrained_path().is_file():
        return Predictor.from_pretrained(device="cpu")
    return tiny_predictor(tmp_path_factory.mktemp("browser"))


def upload(driver: object, url: str, photo: Path) -> str:
    """Load the page, pick ``photo`` in the file input, wait for the answer; returns the state."""
    driver.get(url)
    WebDriverWait(driver, 20).until(lambda d: d.find_element(By.TAG_NAME, "body")
                                    .get_attribute("data-state") == "ready")
    driver.find_element(By.ID, "file-input").send_keys(str(photo))
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.TAG_NAME, "body")
                                    .get_attribute("data-state") in ("done", "error"))
    return driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")


def test_page_boxes_and_labels_the_astronaut(browser: object, page_predictor: Predictor,
                                             tmp_path: Path) -> None:
    photo, coffee = tmp_path / "astronaut.png", tmp_path / "coffee.png"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    Image.fromarray(skimage_data.coffee()).save(coffee)
    with live_server(page_predictor) as url:
        assert upload(browser, url, photo) == "done"
        boxes = browser.find_elements(By.CSS_SELECTOR, "#photo-frame .face-box")
        assert len(boxes) == 1 and boxes[0].is_displayed()
        assert boxes[0].size["width"] > 40 and boxes[0].size["height"] > 40
        label = browser.find_element(By.CSS_SELECTOR, ".face-label").text
        assert label.startswith("1: ") and label.split()[1] in page_predictor.class_names
        assert len(browser.find_elements(By.CSS_SELECTOR, ".face-card .bar-row")) == len(NAMES)
        overlay = browser.find_element(By.CSS_SELECTOR, ".face-card img.attention")
        assert browser.execute_script("return arguments[0].naturalWidth", overlay) == 112
        assert browser.find_element(By.ID, "status").text.startswith("1 face found")
        shot = tmp_path / "serve_demo.png"
        browser.save_screenshot(str(shot))
        assert Image.open(shot).size[0] >= 1000
        target = os.environ.get("FERKIT_DEMO_SCREENSHOT")
        if target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, target)
        # a photo without a face: a clear message on the page, no box
        assert upload(browser, url, coffee) == "error"
        assert browser.find_element(By.ID, "status").text.startswith("no face found in the photo")
        assert browser.find_elements(By.CSS_SELECTOR, ".face-box") == []
