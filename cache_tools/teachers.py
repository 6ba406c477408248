"""Hugging Face teachers behind one interface (torch + transformers, imported lazily).

``load_teacher(model)`` loads a local directory (offline) or a hub id with the
transformers Auto classes and returns a :class:`Teacher`: a callable from a
batch of uint8 images ``[B, H, W]`` (grey) or ``[B, H, W, 3]`` to float32
logits ``[B, C]`` and pooled features ``[B, D]``.

Kinds:

* ``classifier`` — ``AutoModelForImageClassification``; logits over the
  model's labels; features are the input of its final linear layer.
* ``clip`` — a CLIP-style model; zero-shot logits ``logit_scale * cos`` between
  the image embedding and the embeddings of one prompt per class
  (``"a photo of a {name}."``); features are the image embeddings.
* ``encoder`` — ``AutoModel`` without a task head: pooled embeddings as
  features; logits come from a linear head fitted on the train split
  (see :mod:`cache_tools.head`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .preprocessing import Preprocess, require_torch, trained_resampler

KINDS = ("auto", "classifier", "clip", "encoder")
DEFAULT_PROMPT = "a photo of a {}."



def weights_digest(model: Any) -> str:
    """sha256 over the model's state dict (names, dtypes, shapes, bytes), in name order."""
    torch = require_torch()
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class Teacher:
    """A loaded teacher: ``teacher(images) -> (logits [B, C], features [B, D])`` as float32."""

    model: Any
    kind: str
    model_id: str
    class_names: list[str]
    preprocess: Preprocess
    device: str = "cpu"
    digest: str = ""
    text_inputs: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    head: tuple[np.ndarray, np.ndarray] | None = None
    _features: list[Any] = field(default_factory=list)

    @property
    def num_params(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def forward(self, pixel_values: Any) -> tuple[Any, Any]:
        """Logits (None for an encoder without head) and features, as torch tensors."""
        torch = require_torch()
        with torch.inference_mode():
            if self.kind == "clip":
                out = self.model(pixel_values=pixel_values, **self.text_inputs)
                return out.logits_per_image, out.image_embeds
            if self.kind == "classifier":
                self._features.clear()
                # the model's own logits (a two-head model averages its heads)
                logits = self.model(pixel_values=pixel_values).logits
                inputs = [t for _, t in sorted(self._features, key=lambda item: item[0])]
                self._features.clear()
                return logits, inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=-1)
            out = self.model(pixel_values=pixel_values)
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                hidden = out.last_hidden_state
                pooled = hidden.mean(dim=(2, 3)) if hidden.ndim == 4 else hidden.mean(dim=1)
            pooled = pooled.reshape(pooled.shape[0], -1)
            return None, pooled

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, features = self.forward(self.preprocess(images, self.device))
        features = features.float().cpu().numpy()
        if logits is None:
            if self.head is None:
                raise ValueError("This encoder teacher has no head yet (fit_head first).")
            weight, bias = self.head
            logits_np = features @ weight.T + bias
        else:
            logits_np = logits.float().cpu().numpy()
        return logits_np.astype(np.float32), features.astype(np.float32)

    @property
    def feature_dim(self) -> int:
        dummy = np.zeros((1, 28, 28), np.uint8)
        return int(self.forward(self.preprocess(dummy, self.device))[1].shape[-1])


def detect_kind(config: Any) -> str:
    if getattr(config, "model_type", "") in ("clip", "siglip", "chinese_clip") or (
        hasattr(config, "text_config") and hasattr(config, "vision_config")
    ):
        return "clip"
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForImageClassification", "ForImageClassificationWithTeacher"))
           for a in architectures):
        return "classifier"
    return "encoder"


#: Two-head classifiers (DeiT distilled, LeViT): their logits average these two heads.
_TWO_HEADS = (("cls_classifier", "distillation_classifier"), ("classifier", "classifier_distill"))


def _classifier_class(config: Any) -> Any:
    """The class a two-head checkpoint names (the Auto class would load one head), else Auto."""
    import transformers

    for arch in getattr(config, "architectures", None) or []:
        if arch.endswith("ForImageClassificationWithTeacher") and hasattr(transformers, arch):
            return getattr(transformers, arch)
    return transformers.AutoModelForImageClassification


def _head_linears(model: Any, out_features: int) -> list[Any]:
    """The final linear layer of each head the logits come from (two for a two-head model)."""
    torch = require_torch()
    for names in _TWO_HEADS:
        heads = [getattr(model, name, None) for name in names]
        if all(isinstance(h, torch.nn.Module) and not isinstance(h, torch.nn.Identity)
               for h in heads):
            return [h if isinstance(h, torch.nn.Linear) else _last_linear(h, out_features)
                    for h in heads]
    return [_last_linear(model, out_features)]


def _last_linear(model: Any, out_features: int) -> Any:
    torch = require_torch()
    found = None
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.out_features == out_features:
            found = module
    if found is None:
        raise ValueError(f"No final linear layer with {out_features} outputs found.")
    return found


def _image_processor(transformers: Any, source: str, model_id: str) -> Any:
    """The model's image processor, or a one-line FileNotFoundError naming the fix."""
    try:
        return transformers.AutoImageProcessor.from_pretrained(source)
    except OSError as err:
        folder = Path(source)
        if folder.is_dir():
            found = [name for name in ("preprocessor_config.json", "processor_config.json")
                     if (folder / name).is_file()]
            problem = (f"its {found[0]} cannot be read as an image processor"
                       if found else "it has no preprocessor_config.json")
            raise FileNotFoundError(
                f"{model_id}: {problem} (the image processor: how images are resized and "
                "normalized for this model). Copy the one of the model it was fine-tuned "
                f"from: AutoImageProcessor.from_pretrained(BASE_MODEL).save_pretrained("
                f"{str(folder)!r}).") from err
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FileNotFoundError(
            f"Cannot load the image processor of {model_id!r} ({first}).") from err


def load_teacher(
    model: str | Path,
    kind: str = "auto",
    device: str = "cpu",
    image_size: int | None = None,
    class_names: list[str] | None = None,
    prompt: str = DEFAULT_PROMPT,
) -> Teacher:
    """Load a Hugging Face teacher from a local directory or a hub id.

    ``class_names`` (the dataset's) name the prompts of a CLIP teacher and
    the classes of an encoder's fitted head; a classifier uses its own labels.
    """
    torch = require_torch()  # a clear error if the [cache] extra is missing
    import transformers

    try:  # registers EfficientNet-Lite with the Auto classes (the shipped teacher)
        from . import efficientnet_lite  # noqa: F401
    except ImportError:
        pass

    # Our CLI shows its own progress; keep transformers' bars and notices out of it.
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}.")
    model_id = str(model)
    local = Path(model_id).expanduser()
    source = str(local) if local.exists() else model_id
    try:
        config = transformers.AutoConfig.from_pretrained(source)
    except OSError as err:
        raise FileNotFoundError(
            f"Cannot load a model from {model_id!r}: it is not a local model directory and "
            f"could not be fetched ({err}). Pass a directory saved with save_pretrained()."
        ) from err
    if kind == "auto":
        kind = detect_kind(config)
    processor = _image_processor(transformers, source, model_id)
    preprocess = Preprocess.from_processor(processor, image_size,
                                           resampler=trained_resampler(source))
    text_inputs: dict[str, Any] = {}
    if kind == "classifier":
        # float32 on every device: the shipped teacher is stored in float16
        net = _classifier_class(config).from_pretrained(source, dtype=torch.float32)
        labels = [net.config.id2label[i] for i in range(len(net.config.id2label))]
    else:
        net = transformers.AutoModel.from_pretrained(source, dtype=torch.float32)
        if not class_names:
            raise ValueError(f"A {kind} teacher needs the dataset's class names.")
        labels = list(class_names)
        if kind == "clip":
            tokenizer = transformers.AutoTokenizer.from_pretrained(source)
            tokens = tokenizer(
                [prompt.format(name) for name in labels], padding=True, return_tensors="pt"
            )
            text_inputs = {k: v.to(device) for k, v in tokens.items()
                           if k in ("input_ids", "attention_mask")}
    # channels-last like Preprocess's output; the digest does not depend on the layout
    net = net.to(device, memory_format=torch.channels_last).eval()
    teacher = Teacher(
        model=net, kind=kind, model_id=model_id, class_names=labels,
        preprocess=preprocess, device=device, digest=weights_digest(net),
        text_inputs=text_inputs, prompt=prompt if kind == "clip" else None,
    )
    if kind == "classifier":
        # The pooled features are what the final linear layer sees (a two-head model:
        # both heads' inputs, concatenated; its logits are linear in them).
        for index, head in enumerate(_head_linears(net, len(labels))):
            head.register_forward_hook(
                lambda module, args, output, index=index: teacher._features.append(
                    (index, args[0].reshape(args[0].shape[0], -1))
                )
            )
    return teacher


def teacher_description(teacher: Teacher) -> dict[str, Any]:
    """Provenance of a teacher, for the cache's attributes."""
    return {
        "teacher_id": teacher.model_id,
        "teacher_digest": teacher.digest,
        "teacher_kind": teacher.kind,
        "teacher_params": teacher.num_params,
        "preprocessing": teacher.preprocess.to_dict(),
        "prompt": teacher.prompt,
    }
