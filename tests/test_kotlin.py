"""The Kotlin preprocessing that ``export --for android`` generates, compiled and run on the JVM
(issue 32): for every registered INT8 model's manifest and every sample face, the same landmarks,
pixels and logits give the Python SDK's alignment matrix, normalised input, P(fake) and decision.

The compiler is the npm package ``kotlin-compiler`` that ``make kotlin`` installs under
``.tools/kotlin`` (on Debian's JDK 17); where it or ``java`` is missing the test skips and says
which, as the browser test does.
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_sdk.bundles.codegen import generate
from deepfake_sdk.bundles.writer import int8_spec, model_metadata
from deepfake_sdk.faces import FacePipeline
from deepfake_sdk.faces.align import similarity_transform, template_points
from deepfake_sdk.metrics import softmax_fake
from deepfake_sdk.preprocess import prepare_crop, to_batch
from deepfake_sdk.zoo import list_models

ROOT = Path(__file__).resolve().parents[1]
KOTLINC = ROOT / ".tools" / "kotlin" / "node_modules" / "kotlin-compiler" / "bin" / "kotlinc"
SAMPLE_FACES = ("astronaut.jpg", "astronaut_face.jpg", "astronaut_selfblend.jpg", "astronaut_selfblend_face.jpg")
LOGITS = [(0.0, 0.0), (2.5, -1.0), (-3.0, 4.0), (10.0, 9.5), (-0.7, 1.9)]
TOLERANCE = 1e-5


def _kotlinc() -> str:
    found = os.environ.get("KOTLINC") or (str(KOTLINC) if KOTLINC.is_file() else shutil.which("kotlinc"))
    if not found:
        pytest.skip("no Kotlin compiler: run `make kotlin` (npm install of kotlin-compiler into .tools/kotlin)")
    if not shutil.which("java"):
        pytest.skip("no java on PATH: install a JDK 17 (apt-get install openjdk-17-jdk-headless)")
    return found


def _models() -> list[str]:
    """Every registered INT8 name, aliases included (each has its own generated MODEL constant)."""
    return list_models("*-int8")


HARNESS_CASE = """
fun run{i}(inp: DataInputStream, out: DataOutputStream) {{
    val p = m{i}.DeepfakePreprocessing
    val landmarks = Array(5) {{ floatArrayOf(inp.readFloat(), inp.readFloat()) }}
    for (v in p.alignmentMatrix(landmarks)) out.writeFloat(v)
    val argb = IntArray(p.INPUT_SIZE * p.INPUT_SIZE) {{ inp.readInt() }}
    for (v in p.normalize(argb)) out.writeFloat(v)
    repeat({logits}) {{
        val prob = p.pFake(floatArrayOf(inp.readFloat(), inp.readFloat()))
        out.writeFloat(prob)
        out.writeBoolean(p.isFake(prob))
    }}
}}
"""


def _harness(n_models: int) -> str:
    cases = "".join(HARNESS_CASE.format(i=i, logits=len(LOGITS)) for i in range(n_models))
    calls = ", ".join(f"::run{i}" for i in range(n_models))
    return f"""import java.io.*

{cases}
fun main(args: Array<String>) {{
    val runs = listOf<(DataInputStream, DataOutputStream) -> Unit>({calls})
    DataInputStream(BufferedInputStream(FileInputStream(args[0]))).use {{ inp ->
        DataOutputStream(BufferedOutputStream(FileOutputStream(args[1]))).use {{ out ->
            val cases = inp.readInt()
            repeat(cases) {{ runs[inp.readInt()](inp, out) }}
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def harness_jar(tmp_path_factory) -> tuple[Path, list[str]]:
    """Every model's generated Kotlin (its package renamed ``m<i>`` so they compile together) and
    a harness that feeds each one binary cases, compiled into one jar."""
    kotlinc = _kotlinc()
    work = tmp_path_factory.mktemp("kotlin")
    names = _models()
    for i, name in enumerate(names):
        code = generate("kotlin", model_metadata(name, int8_spec(name)))["DeepfakePreprocessing.kt"]
        assert code.count("package ai.deepfakesdk") == 1
        (work / f"m{i}.kt").write_text(code.replace("package ai.deepfakesdk", f"package m{i}"))
    (work / "Harness.kt").write_text(_harness(len(names)))
    jar = work / "harness.jar"
    sources = sorted(str(p) for p in work.glob("*.kt"))
    done = subprocess.run([kotlinc, *sources, "-include-runtime", "-d", str(jar)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"the generated Kotlin does not compile:\n{done.stderr[-4000:]}"
    return jar, names


@pytest.fixture(scope="module")
def sample_faces(samples) -> list[tuple[str, np.ndarray, Image.Image]]:
    """(file, landmarks, the image) of each sample face, landmarks as the SDK's detector finds them."""
    faces = []
    pipeline = FacePipeline()
    for name in SAMPLE_FACES:
        image = Image.open(samples / name).convert("RGB")
        found = pipeline.faces(image)
        assert found, f"no face found in {name}"
        faces.append((name, np.asarray(found[0].landmarks, np.float32), image))
    return faces


def _argb(crop: np.ndarray) -> np.ndarray:
    rgb = crop.astype(np.uint32)
    return ((0xFF << 24) | (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]).astype(np.uint32).view(np.int32)


def test_generated_kotlin_matches_the_python_sdk_on_every_sample_face(harness_jar, sample_faces, tmp_path):
    from deepfake_sdk.faces.align import align_face
    from deepfake_sdk.zoo import get_spec

    jar, names = harness_jar
    cases, expected = [], []
    for i, name in enumerate(names):
        pp = get_spec(name).preprocessing
        for face, landmarks, image in sample_faces:
            crop = prepare_crop(align_face(image, landmarks.astype(np.float64), pp.size, pp.margin), pp)
            logits = np.asarray(LOGITS, np.float32)
            probs = softmax_fake(logits)
            threshold = get_spec(name).threshold
            cases.append(struct.pack(">i", i) + landmarks.astype(">f4").tobytes() + _argb(crop).astype(">i4").tobytes()
                         + logits.astype(">f4").tobytes())
            matrix = similarity_transform(landmarks, template_points(pp.size, pp.margin))
            expected.append((name, face, matrix.reshape(-1), to_batch(crop[None], pp).reshape(-1), probs,
                             probs >= np.float32(threshold)))
    (tmp_path / "in.bin").write_bytes(struct.pack(">i", len(cases)) + b"".join(cases))
    run = subprocess.run(["java", "-jar", str(jar), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out, at = (tmp_path / "out.bin").read_bytes(), 0
    for name, face, matrix, pixels, probs, decisions in expected:
        got_matrix = np.frombuffer(out, ">f4", 6, at); at += 24
        got_pixels = np.frombuffer(out, ">f4", pixels.size, at); at += 4 * pixels.size
        got = [struct.unpack_from(">f?", out, at + 5 * k) for k in range(len(LOGITS))]; at += 5 * len(LOGITS)
        where = f"{name} on {face}"
        np.testing.assert_allclose(got_matrix, matrix, rtol=TOLERANCE, atol=TOLERANCE, err_msg=f"alignmentMatrix, {where}")
        np.testing.assert_allclose(got_pixels, pixels, rtol=0, atol=TOLERANCE, err_msg=f"normalize, {where}")
        np.testing.assert_allclose([g[0] for g in got], probs, rtol=0, atol=TOLERANCE, err_msg=f"pFake, {where}")
        assert [g[1] for g in got] == list(decisions), f"isFake, {where}"
    assert at == len(out), "the harness wrote more than the cases asked for"
    assert len(names) >= 5 and len(expected) == len(names) * len(SAMPLE_FACES)
