"""The teachers' batched preprocessing equals each model's own image processor.

The reference is the processor that ``AutoImageProcessor`` loads from a saved
directory, on its PIL path (Pillow resizes 8-bit images; numpy crops, rescales
and normalizes). Inputs are real photos (scikit-learn's two 427 x 640 samples,
not square) and real grey Fashion-MNIST digits (28 x 28). Tolerance: the
resized 8-bit pixels are identical (checked with rescale and normalize off);
after rescale and normalize, float32 rounding alone remains (at most 1e-6).
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from cache_tools.preprocessing import Preprocess
from cache_tools.teachers import load_teacher
from tests.tiny_teachers import ID2LABEL, LABEL2ID
from tosc_cache.datasets import load_fashion_mnist

#: float32 rounding of rescale and normalize (measured: 7.2e-7 at most)
ATOL = 1e-6
TEACHER = Path(__file__).resolve().parents[1] / "teachers" / "fashion-mnist-lite0"

transformers.utils.logging.set_verbosity_error()
T = transformers


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    from sklearn.datasets import load_sample_images

    images = np.stack(load_sample_images().images)
    assert images.shape == (2, 427, 640, 3) and images.dtype == np.uint8
    return images


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_fashion_mnist("test")[0][:8]


def _saved(processor, tmp_path_factory):
    """The processor as a model directory ships it: saved, then loaded by the Auto class."""
    path = tmp_path_factory.mktemp("processor")
    processor.save_pretrained(path)
    return T.AutoImageProcessor.from_pretrained(path)


def _reference(processor, images: np.ndarray) -> np.ndarray:
    rgb = images if images.ndim == 4 else np.repeat(images[..., None], 3, axis=-1)
    return processor(list(rgb), return_tensors="np")["pixel_values"]


PROCESSORS = {
    # ViT style: warp to size {height, width}
    "vit-bilinear": lambda: T.ViTImageProcessor(size={"height": 224, "width": 224}, resample=2),
    "vit-bicubic": lambda: T.ViTImageProcessor(size={"height": 64, "width": 64}, resample=3),
    # ConvNeXt: shortest edge / crop_pct, aspect kept, centre crop (below 384), warp at 384
    "convnext": lambda: T.ConvNextImageProcessor(size={"shortest_edge": 224}, crop_pct=0.875),
    "convnext-384": lambda: T.ConvNextImageProcessor(size={"shortest_edge": 384}),
    # shortest edge + centre crop; crop_pct is stored but CLIP's processor ignores it
    "clip": lambda: T.CLIPImageProcessor(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, crop_pct=0.5
    ),
    "bit-non-square-crop": lambda: T.BitImageProcessor(
        size={"shortest_edge": 64}, crop_size={"height": 56, "width": 48}
    ),
    # a crop larger than the resized image: numpy's zero padding
    "clip-crop-overhangs": lambda: T.CLIPImageProcessor(
        size={"shortest_edge": 20}, crop_size={"height": 40, "width": 24}
    ),
    "levit": lambda: T.LevitImageProcessor(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
    ),
    "deit": lambda: T.DeiTImageProcessor(
        size={"height": 256, "width": 256}, crop_size={"height": 224, "width": 224}
    ),
    "poolformer": lambda: T.PoolFormerImageProcessor(size={"shortest_edge": 224}, crop_pct=0.9),
    "efficientnet": lambda: T.EfficientNetImageProcessor(
        size={"height": 100, "width": 120}, rescale_offset=True, do_center_crop=True,
        crop_size={"height": 90, "width": 90},
    ),
    "mobilevit": lambda: T.MobileViTImageProcessor(
        size={"shortest_edge": 64}, crop_size={"height": 60, "width": 60}
    ),
}


@pytest.mark.parametrize("name", list(PROCESSORS))
def test_equals_the_processor_on_photos_and_grey_digits(name, photos, digits, tmp_path_factory):
    processor = _saved(PROCESSORS[name](), tmp_path_factory)
    preprocess = Preprocess.from_processor(processor)
    assert preprocess.to_dict()["resampler"] == "pil-8bit-exact"
    for images in (photos, digits):
        ours = preprocess(images)
        assert ours.dtype == torch.float32 and ours.is_contiguous(
            memory_format=torch.channels_last
        )
        ref = _reference(processor, images)
        assert ours.shape == ref.shape
        assert preprocess.output_shape(*images.shape[1:3]) == ref.shape[-2:]
        np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=ATOL)


@pytest.mark.parametrize("resample", [0, 1, 2, 3, 4, 5],
                         ids=["nearest", "lanczos", "bilinear", "bicubic", "box", "hamming"])
def test_every_pil_filter_gives_pillows_8bit_pixels(resample, photos, digits, tmp_path_factory):
    # rescale and normalize off: the outputs are the resized 8-bit values themselves
    for size, images in (({"height": 100, "width": 77}, photos),  # down, both axes differ
                         ({"height": 61, "width": 45}, digits)):  # up, not a multiple
        processor = _saved(T.ViTImageProcessor(
            size=size, resample=resample, do_rescale=False, do_normalize=False
        ), tmp_path_factory)
        ours = Preprocess.from_processor(processor)(images).numpy()
        np.testing.assert_array_equal(ours, _reference(processor, images))


def test_grey_input_equals_the_same_image_as_rgb(digits, photos):
    preprocess = Preprocess.from_processor(
        T.CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 36, "width": 36})
    )
    rgb = np.repeat(digits[..., None], 3, axis=-1)
    np.testing.assert_array_equal(preprocess(digits).numpy(), preprocess(rgb).numpy())
    np.testing.assert_array_equal(preprocess(digits[..., None]).numpy(),
                                  preprocess(digits).numpy())
    assert preprocess(photos).shape == (2, 3, 36, 36)
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        preprocess(np.zeros((2, 8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(digits.astype(np.float32) / 255)


def test_unsupported_resampling_and_options_are_errors():
    processor = T.ViTImageProcessor(size={"height": 32, "width": 32})
    processor.resample = 7  # not one of PIL's filters
    with pytest.raises(ValueError, match="resample=7"):
        Preprocess.from_processor(processor)
    # torch's resampler has bilinear and bicubic only: no silent substitute for the others
    for resample in (0, 1, 4, 5):
        with pytest.raises(ValueError, match="no torch resampler"):
            Preprocess.from_processor(
                T.ViTImageProcessor(size={"height": 32, "width": 32}, resample=resample),
                resampler="torch",
            )
    with pytest.raises(ValueError, match="do_pad"):
        Preprocess.from_processor(T.ViTImageProcessor(do_pad=True, pad_size={"height": 40,
                                                                             "width": 40}))
    with pytest.raises(ValueError, match="size"):
        Preprocess.from_processor(T.ViTImageProcessor(size={"max_height": 40, "max_width": 40}))
    # a class with its own image path (Perceiver crops before it resizes) is refused by name
    with pytest.raises(ValueError, match="PerceiverImageProcessor"):
        Preprocess.from_processor(T.PerceiverImageProcessor())


def test_shipped_teacher_keeps_the_resampler_it_was_trained_and_cached_with(digits):
    # Fine-tuned (and its cache extracted) with torch's antialiased bicubic, rounded once:
    # its pixels stay bit-identical to that, so the shipped cache still matches the teacher.
    teacher = load_teacher(TEACHER)
    preprocess = teacher.preprocess
    assert preprocess.resampler == "torch" and preprocess.to_dict()["resample"] == "bicubic"
    x = torch.from_numpy(digits.astype(np.float32))[:, None].expand(-1, 3, -1, -1)
    x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bicubic", align_corners=False,
                                        antialias=True).round().clamp(0, 255)
    mean = torch.tensor(preprocess.mean)[:, None, None]
    std = torch.tensor(preprocess.std)[:, None, None]
    np.testing.assert_array_equal(preprocess(digits).numpy(),
                                  ((x * preprocess.rescale - mean) / std).numpy())
    # the same processor on the PIL resampler is the processor's own output
    processor = T.AutoImageProcessor.from_pretrained(TEACHER)
    pil = Preprocess.from_processor(processor)
    np.testing.assert_allclose(pil(digits).numpy(), _reference(processor, digits), atol=ATOL)


def _save_two_head(kind: str, path: Path) -> Path:
    torch.manual_seed(0)
    labels = {"num_labels": 10, "id2label": ID2LABEL, "label2id": LABEL2ID}
    if kind == "deit":
        config = T.DeiTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                              num_attention_heads=2, intermediate_size=64, **labels)
        model = T.DeiTForImageClassificationWithTeacher(config)
        processor = T.DeiTImageProcessor(size={"height": 36, "width": 36},
                                         crop_size={"height": 32, "width": 32})
    else:
        config = T.LevitConfig(image_size=32, hidden_sizes=[16, 24, 32],
                               num_attention_heads=[1, 2, 2], depths=[1, 1, 1],
                               key_dim=[8, 8, 8], patch_size=16, **labels)
        model = T.LevitForImageClassificationWithTeacher(config)
        processor = T.LevitImageProcessor(size={"shortest_edge": 32},
                                          crop_size={"height": 32, "width": 32})
    with torch.no_grad():  # distinct heads, so that an average differs from either one
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.mark.parametrize("kind", ["deit", "levit"])
def test_two_head_teacher_gives_the_models_own_logits(kind, photos, tmp_path):
    path = _save_two_head(kind, tmp_path / kind)
    teacher = load_teacher(path)
    assert teacher.kind == "classifier"
    assert type(teacher.model).__name__.endswith("ForImageClassificationWithTeacher")
    logits, features = teacher(photos)
    processor = T.AutoImageProcessor.from_pretrained(path)
    inputs = processor(list(photos), return_tensors="pt")
    np.testing.assert_allclose(teacher.preprocess(photos).numpy(),
                               inputs["pixel_values"].numpy(), atol=ATOL)
    reference = T.AutoConfig.from_pretrained(path).architectures[0]
    model = getattr(T, reference).from_pretrained(path).eval()
    with torch.no_grad():
        out = model(**inputs)
    np.testing.assert_allclose(logits, out.logits.numpy(), rtol=1e-5, atol=1e-5)
    # both heads count: the average, not the class-token head alone
    assert np.abs(out.cls_logits.numpy() - out.logits.numpy()).max() > 1e-3
    # features: the inputs of both heads' final linear layers, concatenated
    heads = ((model.cls_classifier, model.distillation_classifier) if kind == "deit"
             else (model.classifier.linear, model.classifier_distill.linear))
    dim = heads[0].in_features
    assert features.shape == (2, 2 * dim)
    with torch.no_grad():
        f = torch.from_numpy(features)
        again = (heads[0](f[:, :dim]) + heads[1](f[:, dim:])) / 2
    np.testing.assert_allclose(again.numpy(), logits, rtol=1e-5, atol=1e-5)
