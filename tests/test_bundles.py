"""App bundles (``export --for web|android|ios``): contents, checksums, the manifest embedded in
each model file, and generated Kotlin/Swift whose constants are the Python SDK's."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

import deepfake_sdk
from deepfake_sdk.bundles import PLATFORMS
from deepfake_sdk.bundles.codegen import generate
from deepfake_sdk.bundles.writer import Bundle, embedded_part, export_bundle, int8_spec, model_metadata, read_embedded
from deepfake_sdk.cli import main
from deepfake_sdk.errors import ArtifactError, UsageError
from deepfake_sdk.faces.align import similarity_transform, template_points
from deepfake_sdk.targets import TARGETS
from deepfake_sdk.zoo import get_spec, list_models

import tinymodel

TINY = tinymodel.register()
FAMILIES = tinymodel.register_families()
EXPECTED = {
    "web": {"model.onnx", "deepfake.mjs"},
    "android": {"model.pte", "model.tflite", "DeepfakePreprocessing.kt", "README.md"},
    "ios": {"model.mlpackage", "DeepfakePreprocessing.swift"},
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Bundle]:
    root = tmp_path_factory.mktemp("bundles")
    return {p: export_bundle(TINY, p, root / p, progress=False) for p in PLATFORMS}


def test_the_platform_table_is_the_cli_choice_and_names_real_targets():
    assert set(EXPECTED) == set(PLATFORMS)
    for platform in PLATFORMS.values():
        assert all(t in TARGETS for t in platform.targets)


@pytest.mark.parametrize("platform", list(EXPECTED))
def test_bundle_holds_its_models_manifest_and_code(bundles, platform):
    bundle = bundles[platform]
    top = {name.split("/")[0] for name in bundle.manifest["files"]}
    assert top == EXPECTED[platform]
    assert Bundle.load(bundle.path).manifest == bundle.manifest  # checksums verified on load
    meta = bundle.manifest
    assert meta["platform"] == platform and meta["model"]["name"] == TINY
    spec = get_spec(TINY)
    assert meta["preprocessing"]["size"] == spec.preprocessing.size and meta["threshold"] == spec.threshold
    for target in PLATFORMS[platform].targets:
        entry = meta["artifacts"][target]
        assert entry["precision"] == "int8" and bundle.model_file(target).exists()


@pytest.mark.parametrize("target", ["onnx", "tflite", "coreml"])
def test_the_manifest_is_embedded_in_the_model_file(bundles, target):
    bundle = next(b for b in bundles.values() if target in b.manifest["artifacts"])
    assert bundle.manifest["artifacts"][target]["metadata_embedded"] is True
    assert read_embedded(bundle, target) == embedded_part(bundle.manifest)


def test_executorch_says_its_file_carries_no_metadata(bundles):
    entry = bundles["android"].manifest["artifacts"]["executorch"]
    assert entry["metadata_embedded"] is False and read_embedded(bundles["android"], "executorch") is None


def test_tflite_with_embedded_metadata_runs_as_the_artifact(bundles):
    """Embedding rewrites the flatbuffer: the interpreter must still give the artifact's logits."""
    from ai_edge_litert.interpreter import Interpreter

    bundle = bundles["android"]
    artifact = deepfake_sdk.load(TINY, target="tflite", progress=False).artifact
    size = bundle.manifest["preprocessing"]["size"]
    x = np.random.default_rng(0).normal(size=(1, 3, size, size)).astype(np.float32)

    def logits(path):
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        return [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]

    for ours, theirs in zip(logits(bundle.model_file("tflite")), logits(artifact.model_file)):
        np.testing.assert_array_equal(ours, theirs)


def test_a_tampered_bundle_is_refused(bundles, tmp_path):
    copy = shutil.copytree(bundles["web"].path, tmp_path / "web")
    (copy / "deepfake.mjs").write_text("// changed\n")
    with pytest.raises(ArtifactError, match="checksum of deepfake.mjs"):
        Bundle.load(copy)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_bundles_for_the_web(family, tmp_path):
    name = FAMILIES[family].replace("-fp32", "-int8")
    bundle = export_bundle(name, "web", tmp_path / family, progress=False)
    assert read_embedded(bundle, "onnx")["model"]["family"] == get_spec(FAMILIES[family]).family


def test_every_registered_int8_model_has_a_bundle_manifest():
    """Every zoo name with an INT8 build maps to one, and its manifest and code generate."""
    for name in list_models("*-int8"):
        spec = int8_spec(name)
        meta = model_metadata(name, spec)
        assert meta["preprocessing"]["size"] == spec.preprocessing.size
        assert all(generate(language, meta) for language in ("kotlin", "swift"))
    assert int8_spec("gend-fp32").name == get_spec("gend-int8").name


def _kotlin_floats(text: str, name: str) -> list[float]:
    return [float(v) for v in re.search(rf"val {name} = floatArrayOf\(([^)]*)\)", text).group(1).replace("f", "").split(",")]


def _swift_floats(text: str, name: str) -> list[float]:
    return [float(v) for v in re.search(rf"static let {name}: \[Float\] = \[([^\]]*)\]", text).group(1).split(",")]


@pytest.mark.parametrize("name", ["gend-int8", "lfm-int8", "gendf-int8", "gend-lite-int8"])
def test_generated_kotlin_and_swift_constants_are_the_sdks(name):
    spec = get_spec(name)
    pp = spec.preprocessing
    meta = model_metadata(name, spec)
    kt = generate("kotlin", meta)["DeepfakePreprocessing.kt"]
    sw = generate("swift", meta)["DeepfakePreprocessing.swift"]
    assert int(re.search(r"INPUT_SIZE = (\d+)", kt).group(1)) == pp.size
    assert int(re.search(r"inputSize = (\d+)", sw).group(1)) == pp.size
    assert int(re.search(r"JPEG_QUALITY = (\d+)", kt).group(1)) == (pp.jpeg_quality or 0)
    assert int(re.search(r"jpegQuality = (\d+)", sw).group(1)) == (pp.jpeg_quality or 0)
    assert float(re.search(r"THRESHOLD = ([\d.e-]+)f", kt).group(1)) == pytest.approx(spec.threshold, abs=1e-7)
    assert float(re.search(r"threshold: Float = ([\d.e-]+)", sw).group(1)) == pytest.approx(spec.threshold, abs=1e-7)
    assert float(re.search(r"MARGIN = ([\d.]+)f", kt).group(1)) == pp.margin
    np.testing.assert_allclose(_kotlin_floats(kt, "MEAN"), pp.mean, atol=1e-8)
    np.testing.assert_allclose(_kotlin_floats(kt, "STD"), pp.std, atol=1e-8)
    np.testing.assert_allclose(_swift_floats(sw, "mean"), pp.mean, atol=1e-8)
    np.testing.assert_allclose(_swift_floats(sw, "std"), pp.std, atol=1e-8)
    kt_template = [[float(v.replace("f", "")) for v in p.split(",")] for p in re.findall(r"floatArrayOf\(([-\d.ef, ]+)\)", kt.split("TEMPLATE")[1])[:5]]
    sw_template = [[float(v) for v in p.split(",")] for p in re.findall(r"\(([-\d.e]+, [-\d.e]+)\)", sw.split("template:")[1])[:5]]
    expected = template_points(pp.size, pp.margin)
    np.testing.assert_allclose(kt_template, expected, atol=1e-5)
    np.testing.assert_allclose(sw_template, expected, atol=1e-5)
    assert f'MODEL = "{name}"' in kt and f'model = "{name}"' in sw


def test_the_generated_alignment_formula_is_the_sdks_fit():
    """The closed form in the Kotlin/Swift (a = sum(xu + yv)/|s|^2, b = sum(xv - yu)/|s|^2) is the
    least-squares similarity the SDK fits with Umeyama's SVD."""
    rng = np.random.default_rng(0)
    dst = template_points(224, 1.3)
    for _ in range(20):
        angle, scale, shift = rng.uniform(-0.6, 0.6), rng.uniform(0.3, 3), rng.uniform(-200, 200, 2)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        src = (dst - 112) @ rot.T * scale + 300 + shift + rng.normal(0, 2, dst.shape)
        (sx, sy), (dx, dy) = src.mean(0), dst.mean(0)
        x, y = src[:, 0] - sx, src[:, 1] - sy
        u, v = dst[:, 0] - dx, dst[:, 1] - dy
        norm = (x * x + y * y).sum()
        a, b = (x * u + y * v).sum() / norm, (x * v - y * u).sum() / norm
        closed = np.array([[a, -b, dx - a * sx + b * sy], [b, a, dy - b * sx - a * sy]])
        np.testing.assert_allclose(closed, similarity_transform(src, dst), atol=1e-9)


def test_export_for_refuses_flags_a_bundle_does_not_take(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["export", TINY, "--for", "web", "--out", str(out), "--precision", "fp32"]) == 2
    assert "--precision other than int8" in capsys.readouterr().err and not out.exists()
    assert main(["export", TINY, "--for", "web"]) == 2



def test_a_model_without_an_int8_build_has_no_bundle():
    from deepfake_sdk.zoo import ModelSpec, register_model

    if "fp32only-fp32" not in list_models():
        register_model(ModelSpec(name="fp32only-fp32", family="gend", backbone="test-tiny-vit", weights=None,
                                 precision="fp32"))
    with pytest.raises(UsageError, match="no INT8 build"):
        int8_spec("fp32only-fp32")


def test_export_for_web_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "web"
    assert main(["export", TINY, "--for", "web", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "model.onnx" in printed and "web bundle of tinygend-int8" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "app-bundle" and set(manifest["files"]) == {"model.onnx", "deepfake.mjs"}


def test_the_web_model_computes_in_float_what_the_browser_computes(bundles, samples):
    """onnxruntime-web's wasm MatMulNBits computes in float: the bundle's copy says so
    (accuracy_level 0), and the Python SDK loads the bundle itself to score what the page scores."""
    import onnx

    bundle = bundles["web"]
    served = deepfake_sdk.load(TINY, target="onnx", progress=False)

    def levels(path):
        return {a.i for n in onnx.load(str(path)).graph.node if n.op_type == "MatMulNBits"
                for a in n.attribute if a.name == "accuracy_level"}

    assert levels(served.artifact.model_file) == {4} and levels(bundle.model_file("onnx")) == {0}
    assert bundle.manifest["artifacts"]["onnx"]["prepared"]["for_browser"]["matmulnbits_float_compute"] > 0
    det = deepfake_sdk.load(str(bundle.path))
    assert det.runtime == "onnxruntime" and det.spec.name == served.spec.name
    ours, theirs = det.predict(samples / "astronaut.jpg"), served.predict(samples / "astronaut.jpg")
    assert ours.label in ("real", "fake") and abs(ours.score - theirs.score) < 0.05


@pytest.mark.parametrize("name", ["gend-int8", "gend-lite-int8"])
def test_the_android_readme_uses_only_what_the_generated_kotlin_declares(name):
    """The bundle's README shows the lines an app needs (about 20); every DeepfakePreprocessing
    member it calls or reads is declared by the generated object, with the arity it is called with."""
    files = generate("kotlin", model_metadata(name, get_spec(name)))
    readme, kt = files["README.md"], files["DeepfakePreprocessing.kt"]
    code = readme.split("```kotlin\n")[1].split("```")[0]
    assert 12 <= len(code.strip().splitlines()) <= 22
    used = set(re.findall(r"DeepfakePreprocessing\.(\w+)", code))
    declared = set(re.findall(r"(?:const val|val|fun) (\w+)", kt))
    assert used and used <= declared, f"the README uses {sorted(used - declared)}, which the Kotlin does not declare"
    for fn in re.findall(r"DeepfakePreprocessing\.(\w+)\(", code):
        params = re.search(rf"fun {fn}\(([^)]*)\)", kt).group(1)
        assert params.count(":") == 1, f"{fn} takes {params!r}; the README calls it with one argument"
    assert "model.tflite" in readme and get_spec(name).preprocessing.size > 0
