"""The web demo in a real headless Chromium: upload a wav, submit, and the reply shown is what
``palign_inference --wav`` prints for the same file; a corrupt upload gets a message and the server
keeps answering. Needs chromium + chromedriver (tools/install_browser.sh, which test/run.sh calls). The
screenshot goes to $PALIGN_TEST_ARTIFACTS (default: the test's tmp dir)."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, tiny_training_cmd
from espnet_ext.datadir import read_kv

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def demo_model(tiny_llm, small_corpus, tmp_path_factory):
    from espnet_ext.tasks.palign import PalignTask

    exp = tmp_path_factory.mktemp("demo") / "palign"
    PalignTask.main(cmd=tiny_training_cmd(tiny_llm, small_corpus, exp, max_epoch=1))
    return exp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_server(demo_model, small_corpus, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("demo_log") / "demo.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "espnet_ext.bin.demo", "--model_dir", str(demo_model),
                                 "--examples_dir", str(small_corpus / "test"), "--port", str(port),
                                 "--max_new_tokens", "8"], stdout=f, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"the demo exited:\n{log.read_text()}")
            time.sleep(1)
    else:
        proc.kill()
        raise AssertionError(f"the demo did not answer on {url} within 180 s:\n{log.read_text()}")
    yield url, log
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.fail("chromium and chromedriver are needed: run tools/install_browser.sh")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,2000"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def submit(browser, url, wav: Path, timeout: float = 120):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    wait = WebDriverWait(browser, timeout)
    upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#audio input[type=file]")))
    upload.send_keys(str(wav))
    try:  # the player appears once the upload is in; a file the browser cannot decode may show none
        WebDriverWait(browser, 15).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#audio audio")))
    except TimeoutException:
        pass
    value = lambda elem_id: browser.find_element(By.CSS_SELECTOR, f"#{elem_id} textarea").get_attribute("value")
    status_text = lambda d: d.find_element(By.CSS_SELECTOR, "#status").text.strip()
    browser.find_element(By.CSS_SELECTOR, "#send").click()
    start = time.time()
    # The reply streams in first ("Replied after ..."), the other columns after it.
    wait.until(lambda d: value("reply") or status_text(d))
    reply_seconds = time.time() - start
    status = wait.until(lambda d: (s := status_text(d)) and not s.startswith("Replied after") and s)
    return status, {k: value(k) for k in ("reply", "emotion", "transcript", "text_reply")}, reply_seconds


def test_demo_in_a_real_browser_shows_what_the_cli_prints(demo_server, demo_model, small_corpus, browser,
                                                          tmp_path, capsys):
    from espnet_ext.bin import palign_inference

    url, log = demo_server
    wav = Path(next(iter(read_kv(small_corpus / "test" / "wav.scp").values())))
    status, shown, reply_seconds = submit(browser, url, wav)
    shots = Path(os.environ.get("PALIGN_TEST_ARTIFACTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shots / "demo_screenshot.png"))
    assert status.startswith("Answered a"), (status, log.read_text())
    assert palign_inference.main(["--model_dir", str(demo_model), "--wav", str(wav), "--max_new_tokens", "8"]) == 0
    assert shown["reply"] == capsys.readouterr().out.rstrip("\n")
    assert shown["emotion"] and shown["text_reply"]
    print(f"submit to reply in the browser: {reply_seconds:.1f} s; page: {status}")

    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" + os.urandom(200))
    status, shown, _ = submit(browser, url, bad)
    assert status.startswith("Cannot answer: Cannot read this file as audio"), status
    assert shown["reply"] == ""
    status, _, _ = submit(browser, url, wav)  # the server still answers
    assert status.startswith("Answered a"), status


def test_demo_refuses_silent_and_long_recordings_with_a_message(tmp_path):
    import numpy as np
    import soundfile

    from espnet_ext.demo import DemoInputError, read_recording

    soundfile.write(tmp_path / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    soundfile.write(tmp_path / "long.wav", 0.1 * np.ones(31 * 8000, dtype=np.float32), 8000)
    with pytest.raises(DemoInputError, match="silent"):
        read_recording(str(tmp_path / "silent.wav"))
    with pytest.raises(DemoInputError, match="31.0 s long; the demo takes up to 30 s"):
        read_recording(str(tmp_path / "long.wav"))
    with pytest.raises(DemoInputError, match="No recording"):
        read_recording(None)


def test_demo_gives_a_model_that_reads_the_transcript_whispers_words(demo_model, small_corpus):
    """A model trained with {text} in its student turn (student_prompts) hears the speech and is given the
    offline Whisper transcript: the page's reply is what the model answers with those words written in."""
    from espnet_ext.datadir import read_kv
    from espnet_ext.demo import DemoBackend, DemoInputError, read_recording
    from espnet_ext.inference import batch_tensor

    backend = DemoBackend(demo_model, max_new_tokens=4)
    assert backend.asr is not None, backend.asr_error
    backend.model.student_prompts["response"] = "<speech> {text}"  # what training with that turn stores
    x = read_recording(next(iter(read_kv(small_corpus / "test" / "wav.scp").values())))
    result = backend.answer(x)
    speech, lengths = batch_tensor([x], "cpu")
    words = result.transcript or "..."
    assert result.reply == backend.model.generate(speech, lengths, user=f"<speech> {words}", max_new_tokens=4)[0]
    backend.asr, backend.asr_error = None, "no offline Whisper model"
    with pytest.raises(DemoInputError, match="reads the transcript beside the speech, and no offline Whisper"):
        backend.answer(x)
