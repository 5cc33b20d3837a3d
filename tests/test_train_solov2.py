"""``edgeseg train --head solov2``: SOLO targets, the PartSeg-started trunk, the heads-only training loop, the
ONNX export's SOLOv2 raw-head layout, and the bundled model decoded by edgeseg on held-out scenes.

CI-sized: a few steps at 128x160 on a handful of scenes. The full training is `edgeseg train --head solov2`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgeseg.synthparts import CLASSES, SceneConfig, render_scene, scene_seed
from edgeseg.train.config import TrainConfig
from edgeseg.train.data import build_split, collate
from edgeseg.train.solov2 import (
    MMDET_MEAN,
    MMDET_STD,
    SOLOV2_PREPROCESS,
    SoloConfig,
    SoloExport,
    SoloV2,
    build_model,
    export_solov2,
    solo_loss,
    solo_targets,
    train_solov2,
)

HW = (128, 160)
SCENE = SceneConfig(width=320, height=256, part_size=(48.0, 90.0), max_parts=6)
TINY = TrainConfig(input_hw=HW, train_images=8, epochs=2, batch=4, warmup_steps=2, checkpoint_every=1, threads=2)
REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "models" / "partseg-solov2.onnx"
HELD_OUT_SEED = 777_777  # neither the training seed (0) nor the card's validation seed (1000003)


@pytest.fixture(scope="module")
def samples():
    return build_split(8, seed=0, input_hw=HW, config=SCENE, progress=False, pre=SOLOV2_PREPROCESS)


@pytest.fixture(scope="module")
def trained(samples, tmp_path_factory):
    out = tmp_path_factory.mktemp("train_solov2")
    return out, train_solov2(out, TINY, SCENE, progress=False, samples=samples)


def test_samples_are_fitted_top_left_with_mean_padding(samples):
    # 320x256 scenes into 128x160: scale 0.5 exactly fills the input; a 4:3 scene leaves a bottom band.
    s = build_split(1, seed=0, input_hw=HW, config=dataclasses.replace(SCENE, height=200), progress=False,
                    pre=SOLOV2_PREPROCESS)[0]  # fmt: skip
    assert (s.image[:, 100:, :] == np.rint(MMDET_MEAN).astype(np.uint8)[:, None, None]).all()
    assert s.boxes[:, 3].max() <= 100.5


def test_targets_mark_the_centre_region_on_the_levels_of_its_scale():
    config = SoloConfig(num_classes=2)
    h, w = 256, 320
    masks = torch.zeros(1, 1, h // 4, w // 4)
    masks[0, 0, 10:20, 20:30] = 1.0  # a 40x40 px square centred on (100, 60)
    boxes = torch.tensor([[[80.0, 40.0, 120.0, 80.0]]])
    labels, pos_b, pos_g, inst = solo_targets(config, boxes, torch.tensor([[1]]), torch.tensor([[True]]), masks, (h, w))
    g0, g1, g2 = (s * s for s in config.grids)
    assert labels.shape == (1, g0 + g1 + g2)
    # sqrt(area) 40: levels 0 (1-48) and 1 (32-72), not 2 (56+).
    assert (labels[0, g0 + g1 :] == -1).all()
    cells0 = (labels[0, :g0] == 1).nonzero().flatten()
    cells1 = (labels[0, g0 : g0 + g1] == 1).nonzero().flatten()
    s0 = config.grids[0]
    assert (60 * s0 // h) * s0 + 100 * s0 // w in cells0.tolist()  # the centre cell
    assert 1 <= len(cells0) <= 9 and 1 <= len(cells1) <= 9
    assert len(pos_g) == len(cells0) + len(cells1) and (inst == 0).all() and (pos_b == 0).all()


def test_trunk_starts_from_partseg_exactly():
    model = build_model(len(CLASSES)).eval()
    sess = ort.InferenceSession(str(REPO / "models" / "partseg.onnx"))
    x = torch.rand(1, 3, 256, 320)
    protos = sess.run(None, {"images": x.numpy()})[1]
    mean, std = torch.tensor(MMDET_MEAN).view(1, 3, 1, 1), torch.tensor(MMDET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        _, p3, _, _ = model.trunk((x * 255 - mean) / std)
        np.testing.assert_allclose(model.proto(p3).numpy(), protos, atol=1e-4)
        # The refinement starts as the identity: the mask features are PartSeg's prototypes.
        np.testing.assert_allclose(model((x * 255 - mean) / std)[2].numpy(), protos, atol=1e-4)


def test_loss_falls_when_fitting_one_batch(samples):
    torch.manual_seed(0)
    model = SoloV2(SoloConfig(num_classes=len(CLASSES))).train()
    batch = collate(samples[:4])
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(12):
        loss, parts = solo_loss(model, batch)
        assert parts["pos"] > 0
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


def test_export_has_the_solov2_layout_and_matches_torch(trained, tmp_path):
    _, model = trained
    path = export_solov2(model, tmp_path / "m.onnx", HW, CLASSES)
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["grids"] == "[24, 16, 12]" and meta["strides"] == "[8, 16, 32]" and meta["imgsz"] == "[128, 160]"
    assert meta["cate_activation"] == "sigmoid" and meta["mask_stride"] == "4"
    sess = ort.InferenceSession(str(path))
    g = sum(s * s for s in model.config.grids)
    shapes = {o.name: o.shape for o in sess.get_outputs()}
    assert shapes == {
        "cate_preds": [1, g, len(CLASSES)],
        "kernel_preds": [1, g, 32],
        "mask_feats": [1, 32, HW[0] // 4, HW[1] // 4],
    }
    x = torch.randn(1, 3, *HW)
    with torch.no_grad():
        ref = SoloExport(model)(x)
    for got, want in zip(sess.run(None, {"input": x.numpy()}), ref):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-4)
    assert ref[0].min() >= 0 and ref[0].max() <= 1  # sigmoid scores


def test_training_resumes_and_refuses_other_settings(samples, trained):
    out, model = trained
    again = train_solov2(out, TINY, SCENE, progress=False)  # finished: no rendering, same weights
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="another run"):
        train_solov2(out, dataclasses.replace(TINY, lr=1e-4), SCENE, progress=False, samples=samples)


def test_bundled_solov2_model_segments_held_out_scenes():
    import edgeseg
    from edgeseg import zoo

    assert zoo.resolve("partseg-solov2").name == BUNDLED.name
    model = edgeseg.load("partseg-solov2")
    assert model.spec.names == CLASSES and model.spec.family == "solov2"
    # At a deployment threshold (0.3): every part found with a good mask. SOLO keeps some lower-scored
    # partial duplicates that Matrix NMS decays but does not remove, so the count is a lower bound only.
    ious = []
    for i in range(4):
        scene = render_scene(scene_seed(HELD_OUT_SEED, i))
        result = model(scene.image, conf=0.3)
        assert len(result) >= len(scene)
        found = result.masks.dense()
        for k in range(len(scene)):
            truth = scene.instance_map == k + 1
            ious.append(max(((m & truth).sum() / (m | truth).sum() for m in found), default=0.0))
    assert np.mean(np.array(ious) >= 0.5) >= 0.9, ious
    assert np.mean(ious) >= 0.8, ious


def test_the_recipe_end_to_end_writes_model_card_and_metrics(tmp_path):
    from edgeseg.train.recipe import SOLOV2_CARD, SOLOV2_NAME, make_solov2

    config = dataclasses.replace(TINY, epochs=1)
    report = make_solov2(
        tmp_path / "run", config, val_images=2, publish=tmp_path / "pub", progress=False,
        command="edgeseg train --head solov2 --tiny",
    )  # fmt: skip
    for name in (SOLOV2_NAME, SOLOV2_CARD):
        assert (tmp_path / "pub" / name).is_file()
    card = (tmp_path / "pub" / SOLOV2_CARD).read_text()
    assert "edgeseg train --head solov2 --tiny" in card and all(c in card for c in CLASSES)
    assert "[24, 16, 12]" in card and 0 <= report.fp32_mask_map <= 1 and report.int8 is None
