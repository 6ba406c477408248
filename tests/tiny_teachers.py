"""Small Hugging Face teachers built from configs, saved to disk and reloaded offline.

Random weights, real code paths: the Auto classes, the image processors and
tokenizers all come back from the saved directories.
"""

from __future__ import annotations

import re
from pathlib import Path

from tosc_cache.datasets import FASHION_MNIST_CLASSES

ID2LABEL = dict(enumerate(FASHION_MNIST_CLASSES))
LABEL2ID = {name: i for i, name in ID2LABEL.items()}


def _quiet():
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def _save_vit(path: Path, seed: int, head: bool, class_names=None) -> Path:
    t = _quiet()
    import torch

    torch.manual_seed(seed)
    id2label = ID2LABEL if class_names is None else dict(enumerate(class_names))
    labels = {"num_labels": len(id2label), "id2label": id2label,
              "label2id": {n: i for i, n in id2label.items()}} if head else {}
    config = t.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, **labels,
    )
    model = t.ViTForImageClassification(config) if head else t.ViTModel(config)
    model.save_pretrained(path)
    t.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def make_vit(path: Path, seed: int = 0, class_names=None) -> Path:
    return _save_vit(path, seed, head=True, class_names=class_names)


def make_resnet(path: Path, seed: int = 0) -> Path:
    t = _quiet()
    import torch

    torch.manual_seed(seed)
    config = t.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=10,
        id2label=ID2LABEL, label2id=LABEL2ID,
    )
    t.ResNetForImageClassification(config).save_pretrained(path)
    # ConvNeXt-style processor (shortest edge + crop_pct), as ResNet checkpoints ship
    t.ConvNextImageProcessor(size={"shortest_edge": 36}, crop_pct=0.875).save_pretrained(path)
    return path


def make_clip(path: Path, seed: int = 0) -> Path:
    t = _quiet()
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    words = sorted({w for name in FASHION_MNIST_CLASSES
                    for w in re.findall(r"\w+|[^\w\s]", f"a photo of a {name}.".lower())})
    vocab = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "[EOS]": 3}
    vocab.update({w: i + 4 for i, w in enumerate(words)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 2), ("[EOS]", 3)]
    )
    tok.normalizer = normalizers.Lowercase()
    fast = t.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
        bos_token="[BOS]", eos_token="[EOS]",
    )
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    config = t.CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=32, projection_dim=16,
                         bos_token_id=2, eos_token_id=3, pad_token_id=0),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=1, num_attention_heads=2, projection_dim=16),
        projection_dim=16,
    )
    t.CLIPModel(config).save_pretrained(path)
    t.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(path)
    return path


def make_vit_encoder(path: Path, seed: int = 0) -> Path:
    """A ViT backbone without a task head (the encoder kind)."""
    return _save_vit(path, seed, head=False)


def make_unnamed_vit(path: Path, num_labels: int = 10, seed: int = 0) -> Path:
    """A classifier fine-tuned without ``id2label``: transformers names its classes
    ``LABEL_0``, ``LABEL_1``, ..."""
    t = _quiet()
    import torch

    torch.manual_seed(seed)
    config = t.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_labels=num_labels,
    )
    assert config.id2label == {i: f"LABEL_{i}" for i in range(num_labels)}
    t.ViTForImageClassification(config).save_pretrained(path)
    t.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path
