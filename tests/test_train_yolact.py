"""``edgeseg train --head yolact``: priors, matching, YOLACT's losses, training and the YOLACT-layout export;
and the bundled ``partseg-yolact.onnx`` decoded by edgeseg on held-out synthetic scenes.

CI-sized: a few steps at 128x160 on a handful of scenes. The full training is `edgeseg train --head yolact`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import edgeseg
from edgeseg.synthparts import CLASSES, SceneConfig, render_scene, scene_seed
from edgeseg.train import yolact
from edgeseg.train.config import TrainConfig
from edgeseg.train.data import build_split, collate
from edgeseg.train.recipe import VAL_SEED_OFFSET
from edgeseg.train.trainer import SAMPLES, train

HW = (128, 160)
SCENE = SceneConfig(width=320, height=256, part_size=(48.0, 90.0), max_parts=6)
TINY = TrainConfig(
    input_hw=HW, train_images=8, epochs=2, batch=4, warmup_steps=2, checkpoint_every=1, threads=2, head="yolact"
)
MODEL = Path(__file__).resolve().parents[1] / "models" / "partseg-yolact.onnx"


@pytest.fixture(scope="module")
def samples():
    return build_split(8, seed=0, input_hw=HW, config=SCENE, progress=False, pre=yolact.PREPROCESS)


@pytest.fixture(scope="module")
def trained(samples, tmp_path_factory):
    out = tmp_path_factory.mktemp("train_yolact")
    model = train(out, TINY, SCENE, progress=False, samples=samples)
    return out, model


def test_samples_are_stretched_to_the_input(samples):
    s = samples[0]
    assert s.image.shape == (3, *HW)
    # Stretch: the scene's corners map to the input's corners, no padding.
    scene = render_scene(scene_seed(0, 0), SCENE)
    sx, sy = HW[1] / SCENE.width, HW[0] / SCENE.height
    np.testing.assert_allclose(s.boxes, scene.boxes * np.float32([sx, sy, sx, sy]), rtol=1e-6)


def test_priors_follow_the_head_order_and_round_trip_the_ssd_encoding():
    config = yolact.YolactConfig(num_classes=len(CLASSES))
    net = yolact.Yolact(config).eval()
    with torch.no_grad():
        loc, conf, coef, proto, _ = net(torch.zeros(1, 3, *HW))
    priors = yolact.make_priors(config, HW)
    cells = sum((HW[0] // s) * (HW[1] // s) for s in yolact.STRIDES)
    assert priors.shape == (cells * config.priors_per_cell, 4) == (loc.shape[1], 4)
    assert conf.shape[-1] == len(CLASSES) + 1 and coef.shape[-1] == proto.shape[-1] == config.num_protos
    assert proto.shape[1:3] == (HW[0] // 4, HW[1] // 4)
    # The first cell's priors: centred on it, every scale in every aspect ratio (w / h = ar).
    first = priors[: config.priors_per_cell]
    np.testing.assert_allclose(first[:, 0] * HW[1], 4.0, rtol=1e-6)
    np.testing.assert_allclose((first[:, 2] * HW[1]) / (first[:, 3] * HW[0]), [1, 0.5, 2] * 2, rtol=1e-5)
    boxes = torch.tensor([[0.1, 0.2, 0.4, 0.5], [0.5, 0.5, 0.9, 0.7]])
    p = priors[[7, 300]]
    torch.testing.assert_close(yolact.decode_boxes(yolact.encode_boxes(boxes, p), p), boxes)


def test_matching_makes_every_instance_positive_somewhere():
    priors = yolact.make_priors(yolact.YolactConfig(num_classes=6), HW)
    gt = torch.tensor([[[0.1, 0.1, 0.3, 0.4], [0.5, 0.45, 0.52, 0.48], [0, 0, 0, 0]]])
    valid = torch.tensor([[True, True, False]])
    gt_index, state = yolact.match(priors, gt, valid, yolact.LossGains())
    for j in (0, 1):  # the tiny second box overlaps no prior by 0.5: its best prior is forced positive
        assert ((gt_index == j) & (state == 1)).any()
    assert not ((gt_index == 2) & (state == 1)).any()
    assert set(state.unique().tolist()) <= {-1, 0, 1}


def test_crop_widens_the_box_by_one_prototype_pixel():
    crop = yolact.crop_mask(torch.tensor([[0.25, 0.5, 0.5, 0.75]]), 8, 8)[0]
    rows, cols = np.nonzero(crop.numpy())
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (3, 6, 1, 4)


def test_loss_falls_when_fitting_one_batch(samples):
    torch.manual_seed(0)
    net = yolact.build(len(CLASSES), HW)
    batch = collate(samples[:4])
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(12):
        loss, parts = yolact.loss(net(yolact.normalize(batch["images"])), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0]
    assert set(parts) == {"box", "conf", "mask", "sem", "pos"} and parts["pos"] > 0


def test_loss_without_instances_is_finite(samples):
    net = yolact.build(len(CLASSES), HW)
    batch = collate(samples[:2])
    batch["valid"][:] = False
    batch["classes"][:] = -1
    loss, parts = yolact.loss(net(yolact.normalize(batch["images"])), batch)
    assert torch.isfinite(loss) and parts["box"] == parts["mask"] == 0.0
    loss.backward()


def test_training_writes_checkpoint_and_export_has_the_yolact_layout(samples, trained, tmp_path):
    out, model = trained
    assert (out / "checkpoint.pt").exists() and not (out / SAMPLES).exists()  # samples were given
    path = yolact.export_yolact(model, tmp_path / "y.onnx", HW, CLASSES)
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert ast.literal_eval(meta["names"]) == dict(enumerate(CLASSES))
    assert ast.literal_eval(meta["imgsz"]) == list(HW)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = yolact.normalize(torch.from_numpy(samples[0].image[None]).float() / 255)
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"images": x.numpy()})))
    n = yolact.make_priors(model.config, HW).shape[0]
    assert outs["boxes"].shape == (1, n, 4) and outs["conf"].shape == (1, n, len(CLASSES) + 1)
    assert outs["mask"].shape == (1, n, 32) and outs["proto"].shape == (1, HW[0] // 4, HW[1] // 4, 32)
    np.testing.assert_allclose(outs["conf"].sum(-1), 1.0, atol=1e-5)
    assert np.abs(outs["mask"]).max() <= 1.0 and outs["proto"].min() >= 0.0
    with torch.no_grad():
        loc, _, _, protos, _ = model(x)
    want = yolact.decode_boxes(loc, yolact.make_priors(model.config, HW))
    np.testing.assert_allclose(outs["boxes"], want.numpy(), atol=1e-4)
    np.testing.assert_allclose(outs["proto"], protos.numpy(), atol=1e-4)


def test_non_yolo_heads_keep_their_rendered_split(tmp_path):
    config = TrainConfig(input_hw=HW, train_images=2, epochs=1, batch=2, warmup_steps=1, threads=2, head="yolact")
    train(tmp_path, config, SCENE, progress=False)
    assert (tmp_path / SAMPLES).exists()


def test_bad_head_is_rejected():
    with pytest.raises(ValueError, match="head="):
        TrainConfig(head="solo").validate()


@pytest.mark.skipif(not MODEL.exists(), reason="models/partseg-yolact.onnx not built")
def test_bundled_yolact_model_finds_parts_on_held_out_scenes():
    model = edgeseg.load(MODEL)
    assert model.spec.family == "yolact" and model.spec.names == CLASSES
    found = total = 0
    for i in range(4):
        scene = render_scene(scene_seed(VAL_SEED_OFFSET, i))
        result = model(scene.image, conf=0.3)
        pred = result.masks.dense()
        for j in range(len(scene)):
            gt = scene.instance_map == j + 1
            ious = [(gt & p).sum() / (gt | p).sum() for p, c in zip(pred, result.class_ids) if c == scene.classes[j]]
            found += max(ious, default=0.0) >= 0.5
            total += 1
    assert total >= 10 and found >= 0.9 * total
