"""PartSeg training code: loss, assignment, resumable training, and the ONNX export's YOLOv8-seg layout.

CI-sized: a few steps at 128x160 on a handful of scenes. The full training is `edgeseg train`, not a test.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
import torch

import edgeseg
from edgeseg.synthparts import CLASSES, SceneConfig, render_scene
from edgeseg.train.config import TrainConfig
from edgeseg.train.data import build_split, collate
from edgeseg.train.export import export_onnx
from edgeseg.train.loss import assign, segmentation_loss
from edgeseg.train.net import NUM_COEFFS, NetConfig, PartSeg, anchor_grid
from edgeseg.train.trainer import CHECKPOINT, load_checkpoint, train

HW = (128, 160)
SCENE = SceneConfig(width=320, height=256, part_size=(48.0, 90.0), max_parts=6)
TINY = TrainConfig(input_hw=HW, train_images=8, epochs=2, batch=4, warmup_steps=2, checkpoint_every=1, threads=2)


@pytest.fixture(scope="module")
def samples():
    return build_split(8, seed=0, input_hw=HW, config=SCENE, progress=False)


@pytest.fixture(scope="module")
def trained(samples, tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    model = train(out, TINY, SCENE, progress=False, samples=samples)
    return out, model


def test_samples_match_the_letterboxed_scene(samples):
    s = samples[0]
    assert s.image.shape == (3, *HW) and s.image.dtype == np.uint8
    assert s.masks.shape == (len(s.classes), HW[0] // 4, HW[1] // 4)
    assert len(s.classes) > 0 and s.classes.max() < len(CLASSES)
    # Each instance's mask mass sits inside its box (mapped to prototype pixels).
    for box, mask in zip(s.boxes, s.masks):
        ys, xs = np.nonzero(mask > 127)
        assert len(xs) > 0
        assert xs.min() >= box[0] / 4 - 1 and xs.max() <= box[2] / 4 + 1
        assert ys.min() >= box[1] / 4 - 1 and ys.max() <= box[3] / 4 + 1


def test_collate_flips_boxes_with_images(samples):
    plain = collate(samples[:2])
    rng = np.random.default_rng(3)
    flipped = collate(samples[:2], rng)
    for i in range(2):
        k = int(plain["valid"][i].sum())
        img, ref = flipped["images"][i], plain["images"][i]
        if torch.equal(img, ref):
            continue
        # Whatever flip happened, the mask centroid must move with its box centre.
        for j in range(k):
            m = flipped["masks"][i, j]
            _ys, xs = torch.nonzero(m > 0.5, as_tuple=True)
            cx = (flipped["boxes"][i, j, 0] + flipped["boxes"][i, j, 2]) / 2 / 4
            assert abs(float(xs.float().mean()) + 0.5 - float(cx)) < 0.35 * float(
                (flipped["boxes"][i, j, 2] - flipped["boxes"][i, j, 0]) / 4
            )


def test_assignment_picks_anchors_inside_the_box():
    points, _ = anchor_grid([(16, 20), (8, 10), (4, 5)], torch.device("cpu"))
    n = len(points)
    gt = torch.tensor([[[40.0, 40.0, 90.0, 80.0]]])
    scores = torch.full((1, n, 3), 0.5)
    pred = torch.cat((points - 10, points + 10), -1)[None]
    a = assign(scores, pred, points, gt, torch.tensor([[2]]), torch.tensor([[True]]))
    fg = a.foreground[0]
    assert 0 < int(fg.sum()) <= 10
    inside = (points[fg] > gt[0, 0, :2]).all(-1) & (points[fg] < gt[0, 0, 2:]).all(-1)
    assert bool(inside.all())
    assert a.target_scores[0, fg, 2].min() > 0 and a.target_scores[0, fg][:, :2].abs().sum() == 0
    assert a.target_scores[0, ~fg].abs().sum() == 0


def test_loss_falls_when_fitting_one_batch(samples):
    torch.manual_seed(0)
    net = PartSeg(NetConfig(num_classes=len(CLASSES)))
    opt = torch.optim.AdamW(net.parameters(), 3e-3)
    batch = collate(samples[:2])
    losses = []
    for _ in range(25):
        levels, protos = net(batch["images"])
        loss, parts = segmentation_loss(
            levels, protos, batch["boxes"], batch["classes"], batch["valid"], batch["masks"]
        )
        assert all(np.isfinite(v) for v in parts.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])


def test_loss_without_instances_is_finite():
    net = PartSeg(NetConfig(num_classes=len(CLASSES)))
    levels, protos = net(torch.rand(2, 3, *HW))
    empty = torch.zeros(2, 0)
    loss, parts = segmentation_loss(
        levels, protos, torch.zeros(2, 0, 4), empty.long(), empty.bool(), torch.zeros(2, 0, HW[0] // 4, HW[1] // 4)
    )
    assert torch.isfinite(loss) and parts["box"] == 0 and parts["mask"] == 0
    loss.backward()


def test_export_has_the_yolov8_seg_layout_and_loads_without_configuration(trained, tmp_path):
    _, model = trained
    path = export_onnx(model, tmp_path / "tiny.onnx", HW, CLASSES)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    n = sum((HW[0] // s) * (HW[1] // s) for s in (8, 16, 32))
    assert [o.shape for o in sess.get_outputs()] == [[1, 4 + len(CLASSES) + NUM_COEFFS, n], [1, 32, 32, 40]]
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["task"] == "segment" and eval(meta["imgsz"]) == list(HW) and len(eval(meta["names"])) == 6

    m = edgeseg.load(path)
    assert m.spec.names == CLASSES and tuple(m.spec.imgsz) == HW
    scene = render_scene(5, SCENE)
    result = m(scene.image, conf=0.01)
    assert result.masks.image_shape == scene.image.shape[:2]


def test_export_matches_the_training_graph(trained, tmp_path):
    _, model = trained
    path = export_onnx(model, tmp_path / "tiny.onnx", HW, CLASSES)
    x = torch.rand(1, 3, *HW)
    with torch.no_grad():
        levels, protos = model(x)
    from edgeseg.train.net import REG_MAX, bin_expectation, flatten_levels

    box_logits, cls_logits, coeffs = flatten_levels(levels, len(CLASSES))
    points, strides = anchor_grid([(lv.shape[2], lv.shape[3]) for lv in levels], x.device)
    ltrb = bin_expectation(box_logits)[0] * strides
    xyxy = torch.cat((points - ltrb[:, :2], points + ltrb[:, 2:]), -1)
    out0, out1 = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})
    cxcywh = out0[0, :4].T
    np.testing.assert_allclose(cxcywh[:, :2], ((xyxy[:, :2] + xyxy[:, 2:]) / 2).numpy(), atol=2e-3)
    np.testing.assert_allclose(cxcywh[:, 2:], (xyxy[:, 2:] - xyxy[:, :2]).numpy(), atol=2e-3)
    np.testing.assert_allclose(out0[0, 4 : 4 + len(CLASSES)].T, cls_logits[0].sigmoid().numpy(), atol=1e-4)
    np.testing.assert_allclose(out0[0, 4 + len(CLASSES) :].T, coeffs[0].numpy(), atol=1e-3)
    np.testing.assert_allclose(out1, protos.numpy(), atol=1e-3)
    assert box_logits.shape[-1] == 4 * REG_MAX


def test_interrupted_training_resumes_to_the_same_weights(samples, trained, tmp_path):
    _ref_dir, ref = trained

    def stop_at_3(step, _):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="run the same command again to resume"):
        train(tmp_path, TINY, SCENE, progress=False, samples=samples, on_step=stop_at_3)
    assert load_checkpoint(tmp_path / CHECKPOINT)["step"] == 3
    resumed = train(tmp_path, TINY, SCENE, progress=False, samples=samples)
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k, rtol=1e-5, atol=1e-6)


def test_resume_refuses_other_settings_and_corrupt_checkpoints(samples, trained, tmp_path):
    out, _ = trained
    other = dataclasses.replace(TINY, lr=1e-3)
    with pytest.raises(ValueError, match="different settings"):
        train(out, other, SCENE, progress=False, samples=samples)
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="delete it to start over"):
        train(tmp_path, TINY, SCENE, progress=False, samples=samples)


@pytest.mark.parametrize(
    ("field", "value"),
    [("input_hw", (100, 160)), ("epochs", 0), ("batch", 0), ("lr", 0.0), ("ema_decay", 1.0), ("train_images", 0)],
)
def test_bad_training_settings_are_rejected(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        dataclasses.replace(TINY, **{field: value}).validate()


def test_the_recipe_end_to_end_writes_models_card_and_metrics(tmp_path):
    from edgeseg.train.recipe import CARD_NAME, FP32_NAME, INT8_NAME, make_partseg

    config = dataclasses.replace(TINY, epochs=1)
    report = make_partseg(
        tmp_path / "run", config, val_images=3, calib_images=3, publish=tmp_path / "pub", progress=False,
        command="edgeseg train --tiny",
    )  # fmt: skip
    for name in (FP32_NAME, INT8_NAME, CARD_NAME):
        assert (tmp_path / "pub" / name).is_file()
    card = (tmp_path / "pub" / CARD_NAME).read_text()
    assert "edgeseg train --tiny" in card and all(c in card for c in CLASSES) and "| INT8 |" in card
    assert 0 <= report.fp32_mask_map <= 1 and report.int8_mask_map is not None
    assert edgeseg.load(tmp_path / "pub" / INT8_NAME).spec.names == CLASSES
