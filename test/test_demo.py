"""The web demo in a real headless Chromium: upload a wav, submit, and the reply shown is what
``palign_inference --wav`` prints for the same file; a corrupt upload gets a message and the server
keeps answering. Needs chromium + chromedriver (tools/install_browser.sh, which test/run.sh calls). The
screenshot goes to $PALIGN_TEST_ARTIFACTS (default: the test's tmp dir)."""
import os
import shutil
import socket
import subprocess
import tempfile
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT
from espnet_ext.datadir import read_kv

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def demo_model(tiny_model):
    return tiny_model


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
    assert 1 < backend.min_samples < 16000  # found by trying the model: the page's floor for a recording
    backend.model.student_prompts["response"] = "<speech> {text}"  # what training with that turn stores
    x = read_recording(next(iter(read_kv(small_corpus / "test" / "wav.scp").values())))
    result = backend.answer(x)
    speech, lengths = batch_tensor([x], "cpu")
    words = result.transcript or "..."
    assert result.reply == backend.model.generate(speech, lengths, user=f"<speech> {words}", max_new_tokens=4)[0]
    backend.asr, backend.asr_error = None, "no offline Whisper model"
    with pytest.raises(DemoInputError, match="reads the transcript beside the speech, and no offline Whisper"):
        backend.answer(x)


def raw_submit(url: str, path: str) -> str:
    """The demo's /submit endpoint called over plain HTTP with a FileData naming ``path`` on the server (what
    a hand-made request can send; gradio_client would upload its own copy of the file instead)."""
    import json

    body = json.dumps({"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, ""]}).encode()
    req = urllib.request.Request(f"{url}gradio_api/call/submit", body, {"Content-Type": "application/json"})
    event = json.load(urllib.request.urlopen(req, timeout=30))["event_id"]
    return urllib.request.urlopen(f"{url}gradio_api/call/submit/{event}", timeout=120).read().decode()


def get_status(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=30).status
    except urllib.error.HTTPError as e:
        return e.code


def test_demo_api_serves_only_uploads_and_examples(demo_server, small_corpus, tmp_path):
    """Through the API, not the page: no file of the server outside the uploads and examples can be read, and
    whether one exists cannot be told; a real upload through gradio_client is answered; nothing of another
    server's upload folder is served."""
    import urllib.parse

    from gradio_client import Client, handle_file

    url, log = demo_server
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:the server's own file\n")
    answers = {p: raw_submit(url, p) for p in ("/etc/passwd", str(secret), str(tmp_path / "no_such_file"))}
    # existing and missing paths answer alike (but for the path itself, echoed): nothing to probe with
    assert len({a.replace(p, "PATH") for p, a in answers.items()}) == 1, answers
    assert all("root:" not in a and "Answered" not in a for a in answers.values()), answers
    for path in ("/etc/passwd", str(secret)):
        assert get_status(f"{url}gradio_api/file={urllib.parse.quote(path)}") == 403
    # A file in Gradio's shared default upload folder (where an earlier run would have cached its uploads)
    default = Path(tempfile.gettempdir()) / "gradio" / "paraalign_test_old_upload"
    default.mkdir(parents=True, exist_ok=True)
    (default / "old.wav").write_bytes(b"RIFF")
    assert get_status(f"{url}gradio_api/file={urllib.parse.quote(str(default / 'old.wav'))}") == 403
    # A real upload is answered, and lands in this server's own cache dir
    wav = next(iter(read_kv(small_corpus / "test" / "wav.scp").values()))
    status, reply, *_ = Client(url, verbose=False).predict(handle_file(wav), "", api_name="/submit")
    assert status.startswith("Answered a") and reply, status
    cache = Path(log.read_text().split("uploads in ")[1].split()[0].rstrip(";)"))
    assert cache.name.startswith("paraalign_demo_") and any(cache.rglob("*.wav"))


def test_demo_refuses_a_too_short_recording_with_a_message(tmp_path):
    import numpy as np
    import soundfile

    from espnet_ext.demo import DemoInputError, read_recording

    soundfile.write(tmp_path / "short.wav", 0.1 * np.ones(800, dtype=np.float32), 16000)  # 0.05 s
    with pytest.raises(DemoInputError, match="0.05 s long; this model needs at least 0.10 s"):
        read_recording(str(tmp_path / "short.wav"), min_samples=1600)
