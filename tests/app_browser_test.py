"""The web app's page in a real browser: headless Chromium with Selenium.

Uploads two sample photos through the page's file input, waits for both
results, checks them, downloads the zip and checks its contents; picks a
folder of photos through the folder input; then checks that a bad file gets
a message on the page. The page is also saved
as a screenshot; with CHROMAGEN_APP_SCREENSHOT=PATH set, there too (that is
how docs/app_screenshot.png is made).
"""

import glob
import io
import os
import shutil
import time
import zipfile

import numpy as np
from PIL import Image
import pytest
from selenium import webdriver
from selenium.webdriver.chrome import service as chrome_service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from chromagen_tf import color
from chromagen_tf.data import imaging
from tests import conftest
from tests import utils

# A browser, a chromedriver and the app's server process.
pytestmark = pytest.mark.slow

_PHOTOS = ('chelsea.jpg', 'picos_de_europa.jpg')
_CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
_CHROMEDRIVER = shutil.which('chromedriver') or '/usr/bin/chromedriver'
_WAIT_SECONDS = 120  # For a hang to fail; no speed is asserted.
_WINDOW = (1280, 1100)


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    yield from utils.running_app(str(tmp_path_factory.mktemp('app')))


@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    downloads = str(tmp_path_factory.mktemp('downloads'))
    options = webdriver.ChromeOptions()
    options.binary_location = _CHROMIUM
    for argument in ('--headless', '--no-sandbox', '--disable-gpu',
                     '--disable-quic', '--no-first-run',
                     '--disable-background-networking',
                     '--disable-component-update', '--disable-sync',
                     '--disable-dev-shm-usage',
                     f'--window-size={_WINDOW[0]},{_WINDOW[1]}',
                     f'--user-data-dir={tmp_path_factory.mktemp("profile")}'):
        options.add_argument(argument)
    options.add_experimental_option('prefs', {
        'download.default_directory': downloads,
        'download.prompt_for_download': False,
    })
    driver = webdriver.Chrome(
        options=options, service=chrome_service.Service(_CHROMEDRIVER))
    driver.execute_cdp_cmd('Browser.setDownloadBehavior',
                           {'behavior': 'allow', 'downloadPath': downloads})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, seconds=_WAIT_SECONDS):
    return WebDriverWait(driver, seconds, poll_frequency=0.2).until(condition)


def _cards(driver, state: str) -> list:
    return driver.find_elements(By.CSS_SELECTOR, f'#results .card.{state}')


def _result_chroma(driver, card) -> float:
    """Mean |ab| of the result as the browser shows it (its own pixels)."""
    return driver.execute_script('''
        const image = arguments[0].querySelector('img.after');
        const canvas = document.createElement('canvas');
        canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
        const context = canvas.getContext('2d');
        context.drawImage(image, 0, 0);
        const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
        let spread = 0;
        for (let i = 0; i < data.length; i += 4) {
          spread += Math.max(data[i], data[i + 1], data[i + 2]) -
                    Math.min(data[i], data[i + 1], data[i + 2]);
        }
        return spread / (data.length / 4);
    ''', card)


def _wait_for_download(folder: str, pattern: str) -> str:
    deadline = time.monotonic() + _WAIT_SECONDS
    while time.monotonic() < deadline:
        found = [path for path in glob.glob(os.path.join(folder, pattern))
                 if not path.endswith('.crdownload')]
        if found and not glob.glob(os.path.join(folder, '*.crdownload')):
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f'No {pattern} in {os.listdir(folder)}')


def test_two_photos_colorized_compared_and_zipped(server, browser, tmp_path):
    browser.get(server.url + '/')
    _wait(browser, lambda d: d.find_element(By.ID, 'limits').text)
    paths = [str(conftest.SAMPLE_PHOTOS / name) for name in _PHOTOS]
    browser.find_element(By.ID, 'files').send_keys('\n'.join(paths))
    _wait(browser, lambda d: len(_cards(d, 'done')) + len(_cards(
        d, 'failed')) == 2)
    assert not _cards(browser, 'failed'), browser.find_element(
        By.ID, 'results').text
    originals = {name: np.asarray(imaging.load_rgb(
        conftest.SAMPLE_PHOTOS / name).image) for name in _PHOTOS}
    for card in _cards(browser, 'done'):
        name = card.find_element(By.CSS_SELECTOR, '.name').text
        height, width = originals[name].shape[:2]
        size = browser.execute_script(
            'const i = arguments[0].querySelector("img.after");'
            'return [i.naturalWidth, i.naturalHeight];', card)
        assert size == [width, height], name
        assert _result_chroma(browser, card) > 5, name
        # The slider moves the split between the gray and the colour side.
        slider = card.find_element(By.CSS_SELECTOR, '.slider')
        browser.execute_script(
            'arguments[0].value = 30;'
            'arguments[0].dispatchEvent(new Event("input"));', slider)
        clip = browser.execute_script(
            'return getComputedStyle(arguments[0].querySelector(".before"))'
            '.clipPath;', card)
        assert '70%' in clip, clip  # Gray on the left 30%.
        browser.execute_script(
            'arguments[0].value = 50;'
            'arguments[0].dispatchEvent(new Event("input"));', slider)
        link = card.find_element(By.CSS_SELECTOR, 'a.download')
        assert link.get_attribute('download') == name.replace(
            '.jpg', '-colorized.png')
    browser.save_screenshot(str(tmp_path / 'app.png'))
    if os.environ.get('CHROMAGEN_APP_SCREENSHOT'):
        shutil.copy(tmp_path / 'app.png',
                    os.environ['CHROMAGEN_APP_SCREENSHOT'])

    browser.find_element(By.ID, 'download-all').click()
    archive = _wait_for_download(browser.downloads, '*.zip')
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.testzip() is None
        assert sorted(zipped.namelist()) == sorted(
            name.replace('.jpg', '-colorized.png') for name in _PHOTOS)
        for name in _PHOTOS:
            png = zipped.read(name.replace('.jpg', '-colorized.png'))
            colorized = np.asarray(Image.open(io.BytesIO(png)).convert('RGB'))
            assert colorized.shape == originals[name].shape, name
            lab = color.rgb_to_lab_numpy(colorized)
            l_in = color.rgb_to_lab_numpy(originals[name])[..., 0]
            assert np.abs(lab[..., 0] - l_in).mean() < 0.3, name
            assert np.hypot(lab[..., 1], lab[..., 2]).mean() > 3, name


def test_bad_file_gets_a_message_on_the_page(server, browser, tmp_path):
    browser.get(server.url + '/')
    _wait(browser, lambda d: d.find_element(By.ID, 'limits').text)
    bad = tmp_path / 'notes.jpg'
    bad.write_text('not a photo at all')
    browser.find_element(By.ID, 'files').send_keys(str(bad))
    card = _wait(browser, lambda d: (_cards(d, 'failed') or [None])[0])
    message = card.find_element(By.CSS_SELECTOR, '.error')
    _wait(browser, expected_conditions.visibility_of(message))
    assert 'not a photo' in message.text, message.text
    assert not card.find_element(By.CSS_SELECTOR, 'a.download').is_displayed()


def test_a_chosen_folder_colorizes_its_images(server, browser, tmp_path):
    # A box of scans: photos in a folder and a subfolder, beside a file
    # that is not an image, which the page leaves out.
    folder = tmp_path / 'scans'
    (folder / 'album').mkdir(parents=True)
    shutil.copy(conftest.SAMPLE_PHOTOS / _PHOTOS[0], folder / _PHOTOS[0])
    shutil.copy(conftest.SAMPLE_PHOTOS / _PHOTOS[1],
                folder / 'album' / _PHOTOS[1])
    (folder / 'notes.txt').write_text('not a photo')
    browser.get(server.url + '/')
    _wait(browser, lambda d: d.find_element(By.ID, 'limits').text)
    browser.find_element(By.ID, 'folder').send_keys(str(folder))
    _wait(browser, lambda d: len(_cards(d, 'done')) + len(_cards(
        d, 'failed')) == 2)
    assert not _cards(browser, 'failed'), browser.find_element(
        By.ID, 'results').text
    names = [card.find_element(By.CSS_SELECTOR, '.name').text
             for card in _cards(browser, 'done')]
    assert sorted(names) == sorted(_PHOTOS)
    for card in _cards(browser, 'done'):
        assert _result_chroma(browser, card) > 5
    # Nothing else was queued: the text file never became a card.
    assert len(browser.find_elements(By.CSS_SELECTOR, '#results .card')) == 2
