"""The browser sample page (samples/web/) in real headless Chromium: a web bundle served from
this machine's loopback, crops dropped into the page's file input, and the page's P(fake)
compared with the Python SDK's on the same crops.

Needs Debian's ``chromium``, ``samples/web/node_modules`` (``npm ci``) and Playwright's Python
driver; ``make test`` installs all three (``make web``). Where one is missing the tests skip and
say which and how to install it.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepfake_sdk
from deepfake_sdk.bundles.writer import export_bundle
from deepfake_sdk.preprocess import prepare_crop

import tinymodel

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "samples" / "web"
ORT_WEB = PAGE / "node_modules" / "onnxruntime-web" / "dist" / "ort.wasm.min.mjs"
# Flags measured to keep headless Chromium off the network and quick here (shared/notes/browser.md).
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SAMPLE_FACES = ["astronaut.jpg", "astronaut_face.jpg", "astronaut_selfblend.jpg", "astronaut_selfblend_face.jpg"]


@pytest.fixture(scope="module")
def chromium() -> str:
    path = os.environ.get("DEEPFAKE_SDK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("no Chromium: `make web` installs Debian's chromium (apt-get, as root)")
    if not ORT_WEB.is_file():
        pytest.skip("no onnxruntime-web: `make web` runs npm ci in samples/web")
    pytest.importorskip("playwright.sync_api", reason="Playwright's driver: pip install 'deepfake-sdk[dev]'")
    return path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve_page(bundle_dir: Path, site: Path):
    """The page, its node_modules and a bundle under one folder, served on 127.0.0.1 (loopback
    only, any free port). Returns the running server; ``shutdown()`` stops it."""
    site.mkdir(parents=True, exist_ok=True)
    shutil.copy(PAGE / "index.html", site / "index.html")
    (site / "node_modules").symlink_to(PAGE / "node_modules")
    shutil.copytree(bundle_dir, site / "bundle")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def page_scores(chromium: str, url: str, crops: list[Path], screenshot: Path | None = None) -> list[dict]:
    """Open the page, give it ``crops`` through its file input, return what it scored."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            page.wait_for_function("document.body.dataset.ready === '1' || !!document.body.dataset.error",
                                   timeout=120_000)
            assert not page.evaluate("document.body.dataset.error"), page.evaluate("document.body.dataset.error")
            page.set_input_files("#files", [str(c) for c in crops])
            page.wait_for_function(f"document.body.dataset.scored === '{len(crops)}'", timeout=120_000)
            results = page.evaluate("window.deepfakeResults")
            if screenshot:
                page.screenshot(path=str(screenshot), full_page=True)
            assert not errors, errors
            return results
        finally:
            browser.close()


def python_scores(bundle_dir: Path, samples: Path, out: Path) -> tuple[list[Path], np.ndarray]:
    """The Python SDK's P(fake) of each sample's face with the bundle's own model file, and that
    face's aligned crop written as PNG."""
    det = deepfake_sdk.load(str(bundle_dir))
    assert det.runtime == "onnxruntime"
    out.mkdir(parents=True, exist_ok=True)
    paths, scores = [], []
    for sample in SAMPLE_FACES:
        prediction = det.predict(samples / sample)
        face = prediction.faces[0]
        path = out / f"{Path(sample).stem}.png"
        face.crop.save(path)
        again = det.score_crops(prepare_crop(Image.open(path).convert("RGB"), det.spec.preprocessing)[None])[0]
        assert again == pytest.approx(face.score, abs=1e-6), "the saved crop is what the SDK scored"
        paths.append(path)
        scores.append(face.score)
    return paths, np.asarray(scores)


def check_page_matches_python(chromium: str, name: str, samples: Path, tmp: Path, screenshot: Path | None = None):
    bundle = export_bundle(name, "web", tmp / "bundle", progress=False)
    crops, expected = python_scores(bundle.path, samples, tmp / "crops")
    server = serve_page(bundle.path, tmp / "site")
    try:
        results = page_scores(chromium, f"http://127.0.0.1:{server.server_port}/index.html", crops, screenshot)
    finally:
        server.shutdown()
    got = {r["file"]: r["pFake"] for r in results}
    web = np.asarray([got[c.name] for c in crops])
    print(f"{name}: python {np.round(expected, 4)} web {np.round(web, 4)} max |d| {np.abs(web - expected).max():.2e}")
    np.testing.assert_allclose(web, expected, atol=0.01)
    assert [r["label"] for r in results] == [("fake" if p >= bundle.manifest["threshold"] else "real") for p in web]
    return expected, web


def test_the_page_scores_crops_as_the_python_sdk(chromium, samples, tmp_path):
    check_page_matches_python(chromium, tinymodel.register(), samples, tmp_path)


def test_the_page_refuses_a_model_whose_checksum_does_not_match(chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    bundle = export_bundle(tinymodel.register(), "web", tmp_path / "bundle", progress=False)
    server = serve_page(bundle.path, tmp_path / "site")
    model = tmp_path / "site" / "bundle" / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_port}/index.html")
            page.wait_for_function("!!document.body.dataset.error || document.body.dataset.ready === '1'", timeout=60_000)
            error = page.evaluate("document.body.dataset.error")
            browser.close()
    finally:
        server.shutdown()
    assert error and "checksum" in error and "re-export" in error


@pytest.mark.slow
def test_the_page_scores_the_default_model_as_the_python_sdk(chromium, samples, tmp_path):
    """The shipped default (gend-int8, CLIP ViT-B/16, INT8 ONNX) on the samples' faces; the
    screenshot is the one docs/web.md shows (DEEPFAKE_SDK_DOCS_SCREENSHOT=1 writes it there)."""
    shot = ROOT / "docs" / "img" / "web-page.png" if os.environ.get("DEEPFAKE_SDK_DOCS_SCREENSHOT") else tmp_path / "page.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    check_page_matches_python(chromium, "gend-int8", samples, tmp_path, screenshot=shot)
    assert shot.stat().st_size > 10_000
