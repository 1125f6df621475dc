"""The swap explorer (explore.py): its API returns exactly the model's swap, bad requests and bad starts give
one line, and in a real headless browser the frames the page shows after two clicks are the model's swap."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import explore
from data import DataConfig, MovingMNISTConfig
from models import MODELS, build_model
from models.checkpoint import atomic_torch_save, library_versions, load_model
from utils.explorer.server import ExplorerServer
from utils.explorer.session import to_uint8

REPO = Path(__file__).resolve().parents[1]
VIDEOS, FRAMES, SIZE = 6, 4, 32


def tiny_checkpoint(folder: Path, name: str) -> Path:
    """An untrained tiny model of the registry, with the data config of its 32x32, 4-frame test videos."""
    torch.manual_seed(0)
    fields = {field.name for field in dataclasses.fields(MODELS[name].config_class)}
    config = {"image_size": SIZE, "width": 8, "feature_dim": 16}
    config.update({key: 8 for key in ("latent_dim", "content_dim", "motion_dim") if key in fields})
    config.update({key: 16 for key in ("lstm_hidden", "prior_hidden") if key in fields})
    model = build_model(name, config)
    data = DataConfig(train_size=8, val_size=8, test_size=VIDEOS,
                      video=MovingMNISTConfig(image_size=SIZE, num_frames=FRAMES))
    checkpoint = {"model_state_dict": model.state_dict(), "model_name": name,
                  "model_config": dataclasses.asdict(model.config), "data_config": data.to_dict(),
                  "epoch": 1, "step": 2, "versions": library_versions()}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "best_model.pt"
    atomic_torch_save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("explorer")
    return {name: tiny_checkpoint(root / name, name) for name in MODELS}


@pytest.fixture(scope="module", params=list(MODELS))
def served(request, checkpoints):
    """An explorer server over one model's run folder, serving in a thread: ``(url, server, model)``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors gain nothing from threads (conftest's one_thread, module-wide)
    run = checkpoints[request.param].parent
    server = ExplorerServer(explore.HOST, 0)
    server.attach(explore.load_session(run, VIDEOS, None, torch.device("cpu")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    model, _ = load_model(checkpoints[request.param])
    yield server.url, server, model
    server.shutdown()
    server.server_close()
    torch.set_num_threads(threads)


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def sprite_frames(data_url: str, frames: int) -> np.ndarray:
    """A sprite sheet's ``data:`` URL as uint8 ``(T, H, W)``."""
    png = base64.b64decode(data_url.split(",", 1)[1])
    strip = np.asarray(Image.open(io.BytesIO(png)))  # (H, T * W)
    return np.stack(np.split(strip, frames, axis=1))


def model_swap(model, videos: torch.Tensor, content: int, motion: int) -> np.ndarray:
    with torch.no_grad():
        return to_uint8(model.swap(videos[[content]], videos[[motion]])[0])[:, 0].astype(int)  # (T, H, W)


def test_a_swap_is_the_models_swap_of_the_two_videos(served):
    url, server, model = served
    status, info = get(url + "api/info")
    assert status == 200 and len(info["sprites"]) == VIDEOS and info["frames"] == FRAMES
    assert ("no content/motion split" in info["note"]) != info["explicit_split"]
    assert np.array_equal(sprite_frames(info["sprites"][2], FRAMES), to_uint8(server.session.videos[2])[:, 0])
    status, body = get(url + "api/swap?content=video:1&motion=video:4")
    assert status == 200 and body["request"] == {"content": "video:1", "motion": "video:4", "content_t": "0.0",
                                                 "motion_t": "0.0"}
    shown = sprite_frames(body["sprite"], FRAMES).astype(int)
    # The server decodes codes it encoded in one batch of the grid; model.swap encodes the two videos alone.
    assert np.abs(shown - model_swap(model, server.session.videos, 1, 4)).max() <= 1


def test_the_sliders_and_prior_draws_move_one_code(served):
    url, server, model = served
    videos, session = server.session.videos, server.session
    with torch.no_grad():
        content, motion = model.split(videos)
        generator = torch.Generator().manual_seed(session.seed + 3)
        drawn_content, _ = model.sample_factors(1, FRAMES, generator)
        halfway = model.combine(content[[1]], torch.lerp(motion[[4]], motion[[5]], 0.5))[0]
        end = model.swap(videos[[2]], videos[[4]])[0]
        prior = model.combine(drawn_content, motion[[4]])[0]
    for query, expected in (("content=video:1&motion=video:4&motion_to=video:5&motion_t=0.5", halfway),
                            ("content=video:1&motion=video:4&content_to=video:2&content_t=1", end),
                            ("content=prior:3&motion=video:4", prior)):
        status, body = get(url + "api/swap?" + query)
        assert status == 200, body
        shown = sprite_frames(body["sprite"], FRAMES).astype(int)
        assert np.abs(shown - to_uint8(expected)[:, 0].astype(int)).max() <= 1, query


@pytest.mark.parametrize("query, message", [
    ("content=video:99&motion=video:1", "unknown video 99"),
    ("content=video:-1&motion=video:1", "must be video:I or prior:K"),
    ("content=clip:1&motion=video:1", "must be video:I or prior:K"),
    ("content=video:%D9%A3&motion=video:1", "must be video:I or prior:K"),
    ("motion=video:1", "missing parameter content"),
    ("content=video:1&motion=video:1&content_t=nan", "content_t must be a number in [0, 1]"),
    ("content=video:1&motion=video:1&speed=2", "unknown parameter"),
    ("content=video:1&content=video:2&motion=video:1", "given 2 times"),
])
def test_a_bad_request_is_400_with_one_line(served, query, message):
    status, body = get(served[0] + "api/swap?" + query)
    assert status == 400 and message in body["error"] and "\n" not in body["error"]


def test_an_unknown_page_is_404(served):
    status, body = get(served[0] + "nothing")
    assert status == 404 and "no such page" in body["error"]


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("explore.py: error: ")
    return lines[0]


def test_a_missing_checkpoint_exits_2_with_one_line(tmp_path, capsys):
    assert explore.main(["--checkpoint", str(tmp_path / "nothing.pt"), "--port", "0", "--no-browser"]) == 2
    assert "not found" in one_error_line(capsys)


@pytest.mark.parametrize("options, message", [
    (["--videos", "101"], "--videos must be at most 100"),
    (["--port", "http"], "argument --port"),
    (["--device", "tpu"], "unknown device"),
])
def test_a_bad_option_exits_2_with_one_line(checkpoints, capsys, options, message):
    assert explore.main(["--checkpoint", str(checkpoints["baseline"]), "--no-browser", *options]) == 2
    assert message in one_error_line(capsys)


def test_a_port_in_use_exits_2_with_one_line(checkpoints, capsys):
    with socket.socket() as taken:
        taken.bind((explore.HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = explore.main(["--checkpoint", str(checkpoints["baseline"]), "--port", str(port), "--no-browser"])
    assert status == 2
    assert f"cannot listen on {explore.HOST}:{port}" in one_error_line(capsys)


def test_a_run_folder_is_its_best_checkpoint(checkpoints):
    run = checkpoints["lstm"].parent
    assert explore.checkpoint_file(run) == run / "best_model.pt"
    assert explore.checkpoint_file(run / "best_model.pt") == run / "best_model.pt"


# ----------------------------------------------------------------------------------------------------
# The page in a real browser


def browser_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements-dev.txt)"
    for program in ("chromium", "chromedriver"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture
def browser(tmp_path):
    reason = browser_missing()
    if reason:
        pytest.skip(f"no headless browser: {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,900", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def command(checkpoints):
    """``python explore.py`` as a person runs it, over the Disentangled VAE's run folder: its URL."""
    process = subprocess.Popen(
        [sys.executable, "explore.py", "--checkpoint", str(checkpoints["disentangled"].parent), "--port", "0",
         "--videos", str(VIDEOS), "--no-browser"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        # Ctrl-C as at a terminal, even where pytest runs as a background job (which starts with SIGINT ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    line = process.stdout.readline()  # "[explore] ... open http://127.0.0.1:PORT/ (Ctrl-C stops)"
    if "open http://" not in line:
        process.kill()
        pytest.fail(f"explore.py did not start: {line}{process.communicate()[1]}")
    yield line.split("open ")[1].split()[0]
    process.send_signal(signal.SIGINT)  # Ctrl-C stops it, with status 0
    assert process.wait(timeout=30) == 0
    assert process.stdout.read().strip() == "[explore] stopped"


def test_the_command_serves_the_page_until_ctrl_c(command):
    with urllib.request.urlopen(command, timeout=30) as response:
        assert response.status == 200 and b"Swap explorer" in response.read()


def wait_for(driver, script: str, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {script}")


def test_the_page_shows_the_models_swap_of_the_clicked_videos(browser, command, checkpoints, one_thread):
    from selenium.webdriver.common.by import By

    browser.get(command)
    wait_for(browser, "return document.body.dataset.state === 'ready'")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#grid .tile")) == VIDEOS
    browser.find_element(By.ID, "video-2").click()  # the first click picks the content
    browser.find_element(By.ID, "video-5").click()  # the second the motion
    wait_for(browser, "const s = window.explorer.shown; return document.body.dataset.state === 'ready' && "
                      "s.content === 'video:2' && s.motion === 'video:5'")
    assert float(browser.execute_script("return window.explorer.lastMs")) < 1000  # shown in under a second
    rgba = np.asarray(browser.execute_script("return window.explorer.shownPixels()"), dtype=int)
    shown = rgba.reshape(FRAMES, SIZE, SIZE, 4)[..., 0]
    model, _ = load_model(checkpoints["disentangled"])
    videos = explore.load_session(checkpoints["disentangled"], VIDEOS, None, torch.device("cpu")).videos
    assert np.abs(shown - model_swap(model, videos, 2, 5)).max() <= 1
    assert browser.find_element(By.ID, "error").text == ""


def test_the_page_says_what_went_wrong(browser, command):
    from selenium.webdriver.common.by import By

    browser.get(command + "?content=video:99")
    wait_for(browser, "return document.body.dataset.state === 'error'")
    assert "unknown video 99" in browser.find_element(By.ID, "error").text
