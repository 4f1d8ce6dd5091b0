"""SpatialQwenAudio model + processor: forward/backward/generate, Auto classes, remote code, Qwen2-Audio loading,
controls and PEFT. Tiny random models, a locally trained tokenizer, synthetic FOA; nothing is downloaded."""

import copy
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMultimodalLM,
    AutoProcessor,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
)

from hf_spatial import (
    FOAFeatureExtractor,
    SpatialQwenAudioConfig,
    SpatialQwenAudioForConditionalGeneration,
    SpatialQwenAudioModel,
    SpatialQwenAudioProcessor,
)
from hf_spatial import conventions as C
from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import audio_token_count
from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import (
    AUDIO_ENCODER_OUTPUT_KEYS,
    CACHE_KWARG,
    LANGUAGE_MODEL_LORA_TARGETS,
    SPATIAL_MODULES,
    clip_accdoa,
    name_token_mask,
)
from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio, tiny_qwen2_audio_config_dict
from hf_spatial.tasks.vocabulary import label_phrase
from tests.conftest import REPO_ROOT

RATE = 24000
QUESTION = "Where is the dog relative to the listener? Answer with the letter."


def foa_clip(seconds: float, azimuth: float, seed: int) -> np.ndarray:
    signal = np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * 0.1
    return C.encode_plane_wave(signal, azimuth_deg=azimuth, elevation_deg=0).astype(np.float32)


def chat_text(processor) -> str:
    messages = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": QUESTION}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def activate_spatial_branch(model, seed: int = 1) -> None:
    """Give the zero-initialised projector outputs random weights, as training would, so the branch matters."""
    generator = torch.Generator().manual_seed(seed)
    projector = model.model.spatial_projector
    with torch.no_grad():
        for output in (projector.output, projector.detections_output):
            output.weight.copy_(torch.randn(output.weight.shape, generator=generator) * 0.5)


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_tiny_spatial_qwen_audio(seed=0)
    activate_spatial_branch(model)
    return model, processor


@pytest.fixture(scope="module")
def clips():
    return [foa_clip(1.0, 60, seed=1), foa_clip(1.6, -120, seed=2)]


@pytest.fixture(scope="module")
def inputs(tiny, clips):
    _, processor = tiny
    text = chat_text(processor)
    return processor(text=[text, text], audio=clips, sampling_rate=RATE, padding=True, return_tensors="pt")


def logits_of(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


def test_processor_expands_one_token_per_audio_frame(tiny, inputs):
    model, processor = tiny
    assert "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>" in chat_text(processor)
    per_row = (inputs["input_ids"] == model.config.audio_token_id).sum(-1)
    assert per_row.tolist() == audio_token_count(inputs["feature_attention_mask"].sum(-1)).tolist() == [25, 40]
    assert inputs["spatial_features"].shape == (2, 7, 64, 160)
    assert set(processor.model_input_names) >= {"spatial_features", "spatial_attention_mask", "input_ids"}
    with pytest.raises(ValueError, match="placeholder"):
        processor(text=[chat_text(processor)], audio=[foa_clip(1, 0, 0), foa_clip(1, 0, 1)], sampling_rate=RATE)
    tokens = processor.tokenizer.tokenize("<think>left</think><answer>B</answer>")
    assert tokens == ["<think>", "left", "</think>", "<answer>", "B", "</answer>"]


def test_apply_chat_template_tokenizes_foa_in_messages(tiny, clips):
    _, processor = tiny
    content = [{"type": "audio", "audio": clips[0]}, {"type": "text", "text": QUESTION}]
    messages = [{"role": "user", "content": content}]
    direct = processor.apply_chat_template(
        messages,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"sampling_rate": RATE},
    )
    expected = processor(text=chat_text(processor), audio=clips[0], sampling_rate=RATE, return_tensors="pt")
    assert direct.keys() == expected.keys()
    assert all(torch.equal(direct[key], expected[key]) for key in expected)


def test_forward_backward_generate(tiny, inputs, clips):
    model, processor = tiny
    model = copy.deepcopy(model).train()
    labels = inputs["input_ids"].masked_fill(inputs["input_ids"] == model.config.audio_token_id, -100)
    labels = labels.masked_fill(inputs["attention_mask"] == 0, -100)
    out = model(**inputs, labels=labels)
    assert out.logits.shape == (*inputs["input_ids"].shape, model.config.text_config.vocab_size)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for name in ("spatial_encoder.input_proj", "spatial_projector.bottleneck.0", "multi_modal_projector.linear"):
        grad = model.model.get_submodule(name).weight.grad
        assert grad is not None and grad.abs().sum() > 0, name

    model.eval()
    processor.tokenizer.padding_side = "left"
    try:
        text = chat_text(processor)
        batch = processor(text=[text, text], audio=clips, sampling_rate=RATE, padding=True, return_tensors="pt")
    finally:
        processor.tokenizer.padding_side = "right"
    generated = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert generated.shape[0] == 2 and generated.shape[1] > batch["input_ids"].shape[1]
    assert torch.equal(generated[:, : batch["input_ids"].shape[1]], batch["input_ids"])


def test_mixed_length_batch_matches_single_clips(tiny, clips):
    model, processor = tiny
    text = chat_text(processor)
    batch = processor(text=[text, text], audio=clips, sampling_rate=RATE, padding=True, return_tensors="pt")
    with torch.no_grad():
        embeds, counts = model.model.get_audio_features(
            batch["input_features"],
            batch["feature_attention_mask"],
            batch["spatial_features"],
            batch["spatial_attention_mask"],
        )
        for index, clip in enumerate(clips):
            single = processor.feature_extractor(clip, sampling_rate=RATE, return_tensors="pt")
            alone, count = model.model.get_audio_features(**single)
            assert int(count[0]) == int(counts[index])
            torch.testing.assert_close(embeds[index, : int(count[0])], alone[0], atol=2e-5, rtol=1e-4)


def test_spatial_encoder_heads(tiny, inputs):
    model, _ = tiny
    config = model.config
    with torch.no_grad():
        out = model.get_spatial_outputs(inputs["spatial_features"], inputs["spatial_attention_mask"])
    batch, slots = 2, config.spatial_num_slots
    assert out.last_hidden_state.shape == (batch, 40, config.spatial_hidden_size)
    assert out.attention_mask.sum(-1).tolist() == [25, 40]
    assert out.slot_class_logits.shape == (batch, slots, config.spatial_num_classes)
    assert out.slot_presence_logits.shape == out.slot_distance.shape == (batch, slots)
    torch.testing.assert_close(out.slot_direction.norm(dim=-1), torch.ones(batch, slots))
    assert out.slot_activity_logits.shape == (batch, slots, 40)
    assert out.count_logits.shape == (batch, slots + 1) and out.rt60.shape == (batch,)
    assert (out.slot_distance >= 0).all() and (out.rt60 >= 0).all()


def test_clip_accdoa_sums_each_class_over_the_slots(tiny, inputs):
    model, _ = tiny
    with torch.no_grad():
        out = model.get_spatial_outputs(inputs["spatial_features"], inputs["spatial_attention_mask"])
        encoded = model.model.encode_audio(**{k: v for k, v in inputs.items() if "feature" in k or "spatial" in k})
    presence, classes = torch.sigmoid(out.slot_presence_logits), out.slot_class_logits.softmax(-1)
    expected = torch.zeros(2, model.config.spatial_num_classes, 3)
    for clip in range(2):
        for slot in range(model.config.spatial_num_slots):
            expected[clip] += presence[clip, slot] * classes[clip, slot, :, None] * out.slot_direction[clip, slot]
    torch.testing.assert_close(clip_accdoa(out), expected)
    torch.testing.assert_close(encoded.spatial_clip_accdoa, expected)


def test_mono_control_is_independent_of_xyz(tiny, inputs, clips):
    model, processor = tiny
    scrambled = [clip.copy() for clip in clips]
    for clip in scrambled:
        clip[1:] = np.random.default_rng(7).standard_normal(clip[1:].shape) * 0.1  # new Y, Z, X; same W
    text = chat_text(processor)
    other = processor(text=[text, text], audio=scrambled, sampling_rate=RATE, padding=True, return_tensors="pt")
    assert torch.equal(other["input_features"], inputs["input_features"])
    assert not torch.equal(logits_of(model, other), logits_of(model, inputs))  # the spatial branch is live
    model.set_audio_branches(spatial=False)
    try:
        assert torch.equal(logits_of(model, other), logits_of(model, inputs))
        without_spatial = {k: v for k, v in inputs.items() if not k.startswith("spatial_")}
        assert torch.equal(logits_of(model, without_spatial), logits_of(model, inputs))
    finally:
        model.set_audio_branches()


def test_drop_semantic_branch_ignores_whisper_features(tiny, inputs):
    model, _ = tiny
    changed = {**inputs, "input_features": inputs["input_features"] + 0.5}
    assert not torch.equal(logits_of(model, changed), logits_of(model, inputs))
    model.set_audio_branches(semantic=False)
    try:
        assert torch.equal(logits_of(model, changed), logits_of(model, inputs))
    finally:
        model.set_audio_branches()


def test_frozen_audio_encoders_stay_in_eval_mode_when_training(inputs):
    model, _ = build_tiny_spatial_qwen_audio(seed=0)
    backbone = model.model
    model.train()
    assert backbone.spatial_encoder.training and backbone.audio_tower.training  # trainable: dropout on
    for encoder in (backbone.spatial_encoder, backbone.audio_tower):
        encoder.requires_grad_(False)
    model.train()
    assert model.training and backbone.spatial_projector.training and backbone.language_model.training
    assert not backbone.spatial_encoder.training and not backbone.audio_tower.training
    # The frozen encoders' outputs are deterministic in training, as at inference.
    first = backbone.get_spatial_outputs(inputs["spatial_features"], inputs["spatial_attention_mask"])
    second = backbone.get_spatial_outputs(inputs["spatial_features"], inputs["spatial_attention_mask"])
    assert torch.equal(first.token_accdoa, second.token_accdoa)
    backbone.spatial_encoder.requires_grad_(True)
    model.train()
    assert backbone.spatial_encoder.training and not backbone.audio_tower.training


def test_missing_or_mismatched_spatial_inputs_raise(tiny, inputs):
    model, _ = tiny
    without_spatial = {k: v for k, v in inputs.items() if not k.startswith("spatial_")}
    with pytest.raises(ValueError, match="zero_spatial_branch"):
        model(**without_spatial)
    cut = {
        **inputs,
        "spatial_features": inputs["spatial_features"][..., :80],
        "spatial_attention_mask": inputs["spatial_attention_mask"][:, :80],
    }
    with pytest.raises(ValueError, match="same clips"):
        model(**cut)


def test_name_token_mask_marks_every_occurrence_and_prefers_longer_names():
    names = [[[5]], [[7, 5]], [[9, 9]], []]  # class 3 is never named
    mask = name_token_mask(torch.tensor([[1, 5, 7, 5, 9, 9, 9], [5, 2, 2, 2, 2, 2, 5]]), names)
    assert mask.shape == (2, 7, 4)
    assert mask[0].nonzero().tolist() == [[1, 0], [2, 1], [3, 1], [4, 2], [5, 2], [6, 2]]  # "7 5" keeps its 5
    assert mask[1].nonzero().tolist() == [[0, 0], [6, 0]]


def test_processor_name_token_ids_spell_each_phrase_in_and_at_the_start_of_a_sentence(tiny):
    _, processor = tiny
    dog, never, speech = processor.name_token_ids(["dog", None, "man speaking"])
    assert {processor.tokenizer.decode(tokens) for tokens in dog} == {"dog", " dog", "Dog", " Dog"}
    assert never == []
    text = processor.tokenizer("Where is the man speaking?", add_special_tokens=False)["input_ids"]
    assert name_token_mask(torch.tensor([text]), [dog, never, speech])[0].any(-1).tolist() == [
        False, False, False, True, True, False
    ]  # fmt: skip


@pytest.fixture(scope="module")
def grounded():
    """A tiny model whose slot classes are named in QUESTION ("dog") or not ("speech"), grounding on and live."""
    model, processor = build_tiny_spatial_qwen_audio(seed=0, class_names=["dogAnimal", "speech"])
    activate_spatial_branch(model)
    step0 = copy.deepcopy(model)
    model.config.spatial_name_token_ids = processor.name_token_ids(
        [label_phrase(name) for name in model.config.spatial_class_names]
    )
    return model, processor, step0


def language_model_inputs(model, batch) -> torch.Tensor:
    """The token embeddings the language model receives (audio merged, names grounded)."""
    captured = {}
    hook = model.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: captured.update(kwargs), with_kwargs=True
    )
    try:
        logits_of(model, batch)
    finally:
        hook.remove()
    return captured["inputs_embeds"]


def test_name_grounding_adds_the_named_class_detection_to_its_name(grounded, clips):
    model, processor, without = grounded
    text = chat_text(processor)
    batch = processor(text=[text, text], audio=clips, sampling_rate=RATE, padding=True, return_tensors="pt")
    # Zero-initialised: the same logits as the model without grounding until trained.
    assert torch.equal(logits_of(model, batch), logits_of(without, batch))
    projector = model.model.spatial_projector
    with torch.no_grad():
        projector.name_grounding[-1].weight.normal_(generator=torch.Generator().manual_seed(3))
        encoded = model.model.encode_audio(**{k: v for k, v in batch.items() if "feature" in k or "spatial" in k})
        expected = projector.name_embeddings(encoded.spatial_clip_accdoa)[:, 0]  # each clip's dog detection
    assert not torch.equal(logits_of(model, batch), logits_of(without, batch))
    # Given as an embedding cache would give them, the encoders' outputs ground the names the same way.
    cached = {key: getattr(encoded, key) for key in AUDIO_ENCODER_OUTPUT_KEYS}
    text_inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    assert torch.equal(logits_of(model, {**text_inputs, **cached}), logits_of(model, batch))

    # QUESTION names the dog once: its token, and no other, carries its clip's dog detection.
    grounding = language_model_inputs(model, batch) - language_model_inputs(without, batch)
    dog = name_token_mask(batch["input_ids"], model.config.spatial_name_token_ids)[..., 0]
    assert dog.sum(-1).tolist() == [1, 1]
    assert torch.equal(grounding[~dog], torch.zeros_like(grounding[~dog]))
    torch.testing.assert_close(grounding[dog], expected)

    # The mono control switches grounding off with the rest of the spatial branch.
    model.set_audio_branches(spatial=False)
    without.set_audio_branches(spatial=False)
    try:
        assert torch.equal(logits_of(model, batch), logits_of(without, batch))
    finally:
        model.set_audio_branches()
        without.set_audio_branches()


def test_a_weak_detection_grounds_its_direction_as_clearly_as_a_confident_one(grounded):
    # The readout reads a detection's direction whatever its norm; fed the raw vector, the grounding MLP passed a
    # weakly detected sound's direction on scaled down by its confidence, and the language model answered those
    # items at chance.
    projector = copy.deepcopy(grounded[0].model.spatial_projector)
    with torch.no_grad():
        projector.name_grounding[-1].weight.normal_(generator=torch.Generator().manual_seed(3))
    left, behind = torch.tensor([[[0.0, 1.0, 0.0]]]), torch.tensor([[[-1.0, 0.0, 0.0]]])

    def spread(confidence: float) -> float:
        """How far apart the grounding of a sound to the left and of one behind lie, at that confidence."""
        embeddings = projector.name_embeddings(torch.cat([left, behind]) * confidence)
        return float((embeddings[0] - embeddings[1]).norm())

    with torch.no_grad():
        assert spread(0.05) > 0.5 * spread(1.0) > 0
        never_detected = projector.name_embeddings(torch.zeros(1, 1, 3))
        torch.testing.assert_close(never_detected, projector.name_grounding(torch.zeros(1, 1, 4)))


def test_names_continued_from_the_cache_are_grounded_as_in_one_pass(grounded, clips):
    model, processor, _ = grounded
    with torch.no_grad():
        model.model.spatial_projector.name_grounding[-1].weight.normal_(generator=torch.Generator().manual_seed(3))
    prompt = processor(text=[chat_text(processor)], audio=clips[:1], sampling_rate=RATE, return_tensors="pt")
    answer = processor.tokenizer(["The dog.<|im_end|>"], add_special_tokens=False, return_tensors="pt")["input_ids"]
    features = {key: value for key, value in prompt.items() if "feature" in key or "spatial" in key}
    whole = {**features, "input_ids": torch.cat([prompt["input_ids"], answer], dim=-1)}
    expected = logits_of(model, whole)[:, -answer.shape[1] :]

    with torch.no_grad():
        encoded = model.model.encode_audio(**features)
        cached = {key: getattr(encoded, key) for key in AUDIO_ENCODER_OUTPUT_KEYS}
        first = model(input_ids=prompt["input_ids"], **cached, use_cache=True)

        def continued(**grounding) -> torch.Tensor:
            cache = copy.deepcopy(getattr(first, CACHE_KWARG))
            return model(input_ids=answer, **{CACHE_KWARG: cache}, **grounding).logits

        # Decoding and option scoring continue the prompt from its cache; the clips' detections ground "dog" there.
        torch.testing.assert_close(continued(spatial_clip_accdoa=encoded.spatial_clip_accdoa), expected)
        assert not torch.allclose(continued(), expected, atol=1e-3)  # without them the name is not grounded

    # `generate`, from the encoders' outputs or from the audio features, hands the detections to every decoding step.
    def generated(**inputs) -> tuple[torch.Tensor, list]:
        seen = []
        hook = model.model.register_forward_pre_hook(
            lambda module, args, kwargs: seen.append((kwargs["input_ids"].shape[1], kwargs.get("spatial_clip_accdoa"))),
            with_kwargs=True,
        )
        try:
            tokens = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
        finally:
            hook.remove()
        assert [length for length, _ in seen] == [prompt["input_ids"].shape[1], 1, 1]
        return tokens, [detections for _, detections in seen]

    from_outputs, detections = generated(input_ids=prompt["input_ids"], **cached)
    assert all(torch.equal(each, encoded.spatial_clip_accdoa) for each in detections)
    from_features, detections = generated(**prompt)
    assert detections[0] is None  # computed inside the first step, then carried on
    assert all(torch.allclose(each, encoded.spatial_clip_accdoa) for each in detections[1:])
    torch.testing.assert_close(from_features, from_outputs)


def test_name_grounding_saves_with_the_model_and_refuses_two_clips_in_a_sample(grounded, clips, tmp_path):
    model, processor, _ = grounded
    save_checkpoint(model, processor, tmp_path)
    loaded = AutoModelForMultimodalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.spatial_name_token_ids == model.config.spatial_name_token_ids
    text = chat_text(processor)
    batch = processor(text=[text], audio=clips[:1], sampling_rate=RATE, return_tensors="pt")
    torch.testing.assert_close(
        logits_of(loaded, batch), logits_of(model, batch), rtol=0, atol=1e-5
    )  # rounding: unaligned mmapped tensors
    content = [{"type": "audio"}, {"type": "audio"}, {"type": "text", "text": QUESTION}]
    two = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )
    batch = processor(text=[two], audio=clips, sampling_rate=RATE, return_tensors="pt")
    with pytest.raises(ValueError, match="one clip per sample"):
        logits_of(model, batch)
    with pytest.raises(ValueError, match="spatial_name_token_ids has 1 entries"):
        SpatialQwenAudioConfig(spatial_num_classes=2, spatial_name_token_ids=[[[1]]])


def save_checkpoint(model, processor, directory) -> None:
    model.save_pretrained(directory)
    processor.save_pretrained(directory)


def test_save_load_round_trip_and_auto_classes(tiny, inputs, clips, tmp_path):
    model, processor = tiny
    save_checkpoint(model, processor, tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config) is SpatialQwenAudioConfig and config.auto_map["AutoModelForCausalLM"]
    loaded = AutoModelForMultimodalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is SpatialQwenAudioForConditionalGeneration
    reference = model.state_dict()
    assert loaded.state_dict().keys() == reference.keys()
    assert all(torch.equal(tensor, reference[key]) for key, tensor in loaded.state_dict().items())
    # Equal weights, logits up to rounding: safetensors maps tensors at addresses the CPU kernels may sum differently.
    torch.testing.assert_close(logits_of(loaded, inputs), logits_of(model, inputs), rtol=0, atol=1e-5)
    assert type(AutoModelForCausalLM.from_pretrained(tmp_path)) is SpatialQwenAudioForConditionalGeneration
    assert type(AutoModel.from_pretrained(tmp_path)) is SpatialQwenAudioModel
    assert type(AutoFeatureExtractor.from_pretrained(tmp_path)) is FOAFeatureExtractor

    loaded_processor = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded_processor) is SpatialQwenAudioProcessor
    assert loaded_processor.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    assert loaded_processor.chat_template == processor.chat_template
    text = chat_text(loaded_processor)
    again = loaded_processor(text=[text, text], audio=clips, sampling_rate=RATE, padding=True, return_tensors="pt")
    assert again.keys() == inputs.keys()
    assert all(torch.equal(again[key], inputs[key]) for key in inputs)


CHECK_REGISTRY = """
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING
config_class = AutoConfig.for_model("spatial_qwen_audio").__class__
assert config_class.__name__ == "SpatialQwenAudioConfig", config_class
assert AutoModelForCausalLM._model_mapping[config_class].__name__ == "SpatialQwenAudioForConditionalGeneration"
assert PROCESSOR_MAPPING[config_class].__name__ == "SpatialQwenAudioProcessor"
"""


@pytest.mark.parametrize(
    "first_imports",
    [
        # importing a Qwen2-Audio class first imports AutoConfig from inside transformers (the nested path)
        "import hf_spatial, sys\nassert 'transformers' not in sys.modules\nfrom transformers import Qwen2AudioConfig",
        # our config class first: its own import pulls in the Auto modules
        "from hf_spatial import SpatialQwenAudioConfig",
        # transformers' Auto modules loaded before hf_spatial
        "from transformers import AutoModel, AutoProcessor\nimport hf_spatial",
        # only some Auto modules loaded before: registering imports the others (processor, feature extractor)
        "from transformers import TrainerCallback\nimport hf_spatial",
    ],
    ids=["qwen2-audio-first", "config-first", "transformers-first", "trainer-first"],
)
def test_registration_in_any_import_order(first_imports):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    code = first_imports + "\n" + CHECK_REGISTRY
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO_ROOT, timeout=300)


def assert_loads_with_remote_code_only(model, processor, inputs, tmp_path) -> None:
    """Saved `model` + `processor` load with `trust_remote_code=True` in a process that cannot import hf_spatial, give
    the same logits on `inputs`, and generate from a 1-s clip."""
    checkpoint = tmp_path / "checkpoint"
    save_checkpoint(model, processor, checkpoint)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    torch.save({"inputs": dict(inputs), "logits": logits_of(model, inputs)}, elsewhere / "expected.pt")
    shutil.copytree(checkpoint, elsewhere / "ckpt")
    code = textwrap.dedent(
        """
        import sys
        sys.modules["hf_spatial"] = None  # an editable install would otherwise make it importable
        try:
            import hf_spatial
        except ImportError:
            pass
        else:
            raise SystemExit("hf_spatial should not be importable here")
        import numpy as np, torch
        from transformers import (AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForCausalLM,
                                  AutoModelForMultimodalLM, AutoProcessor)
        kw = {"trust_remote_code": True}
        model = AutoModelForMultimodalLM.from_pretrained("ckpt", **kw).eval()
        assert type(model).__name__ == "SpatialQwenAudioForConditionalGeneration"
        assert "transformers_modules" in type(model).__module__
        assert type(AutoModelForCausalLM.from_pretrained("ckpt", **kw)).__name__ == type(model).__name__
        assert type(AutoModel.from_pretrained("ckpt", **kw)).__name__ == "SpatialQwenAudioModel"
        assert type(AutoConfig.from_pretrained("ckpt", **kw)).__name__ == "SpatialQwenAudioConfig"
        assert type(AutoFeatureExtractor.from_pretrained("ckpt", **kw)).__name__ == "FOAFeatureExtractor"
        processor = AutoProcessor.from_pretrained("ckpt", **kw)
        assert type(processor).__name__ == "SpatialQwenAudioProcessor"
        expected = torch.load("expected.pt")
        with torch.no_grad():
            logits = model(**expected["inputs"]).logits
        torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=1e-5)  # up to rounding
        clip = np.random.default_rng(0).standard_normal((4, 24000)).astype(np.float32) * 0.1
        batch = processor(text="<|audio_bos|><|AUDIO|><|audio_eos|>Where?", audio=clip, sampling_rate=24000,
                          return_tensors="pt")
        assert model.generate(**batch, max_new_tokens=2, do_sample=False).shape[1] > batch["input_ids"].shape[1]
        print("remote code ok")
        """
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "remote code ok" in result.stdout


def test_trust_remote_code_without_the_package(tiny, inputs, tmp_path):
    model, processor = tiny
    assert_loads_with_remote_code_only(model, processor, inputs, tmp_path)


@pytest.fixture(scope="module")
def qwen2_audio(tiny):
    _, processor = tiny
    torch.manual_seed(3)
    config = Qwen2AudioConfig(**tiny_qwen2_audio_config_dict(processor.tokenizer))
    return Qwen2AudioForConditionalGeneration(config).eval()


def legacy_key(key: str) -> str:
    """Key names of Qwen2-Audio checkpoints written before transformers 4.52 (e.g. Qwen/Qwen2-Audio-7B)."""
    if key == "lm_head.weight":
        return "language_model.lm_head.weight"
    if key.startswith("model.language_model."):
        return "language_model.model." + key.removeprefix("model.language_model.")
    return key.removeprefix("model.")


def write_qwen2_audio_checkpoint(base, directory, layout: str) -> None:
    base.save_pretrained(directory)  # config.json + generation_config.json; weights rewritten below
    rename = legacy_key if layout == "legacy" else (lambda key: key)
    tensors = {rename(key): tensor.contiguous() for key, tensor in base.state_dict().items()}
    save_file(tensors, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})


@pytest.mark.parametrize("layout", ["current", "legacy"])
def test_step0_logits_equal_qwen2_audio(qwen2_audio, inputs, tmp_path, layout):
    write_qwen2_audio_checkpoint(qwen2_audio, tmp_path, layout)
    keys = load_file(os.path.join(tmp_path, "model.safetensors")).keys()
    assert ("language_model.lm_head.weight" in keys) == (layout == "legacy")
    mono_inputs = {k: v for k, v in inputs.items() if not k.startswith("spatial_")}
    expected = logits_of(qwen2_audio, mono_inputs)
    for model in (
        SpatialQwenAudioForConditionalGeneration.from_pretrained(tmp_path),
        SpatialQwenAudioForConditionalGeneration.from_qwen2_audio(
            tmp_path, spatial_hidden_size=32, spatial_num_heads=2
        ),
    ):
        assert model.config.model_type == "spatial_qwen_audio"
        assert torch.equal(model.lm_head.weight, qwen2_audio.lm_head.weight)
        assert torch.equal(logits_of(model.eval(), inputs), expected)


def test_from_qwen2_audio_model_object(qwen2_audio, inputs):
    model = SpatialQwenAudioForConditionalGeneration.from_qwen2_audio(qwen2_audio).eval()
    mono_inputs = {k: v for k, v in inputs.items() if not k.startswith("spatial_")}
    assert torch.equal(logits_of(model, inputs), logits_of(qwen2_audio, mono_inputs))


def test_loading_fails_loudly_on_missing_base_weight(qwen2_audio, tmp_path):
    write_qwen2_audio_checkpoint(qwen2_audio, tmp_path, "legacy")
    path = os.path.join(tmp_path, "model.safetensors")
    tensors = load_file(path)
    del tensors["language_model.lm_head.weight"]
    save_file(tensors, path, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"missing: \['lm_head.weight'\]"):
        SpatialQwenAudioForConditionalGeneration.from_pretrained(tmp_path)


def test_a_checkpoint_from_before_name_grounding_loads_unless_grounding_is_on(tiny, inputs, tmp_path):
    model, processor = tiny
    save_checkpoint(model, processor, tmp_path)
    path = tmp_path / "model.safetensors"
    tensors = load_file(path)
    assert [key for key in tensors if ".name_grounding." in key]
    save_file({k: v for k, v in tensors.items() if ".name_grounding." not in k}, path, metadata={"format": "pt"})
    loaded = AutoModelForMultimodalLM.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(logits_of(loaded, inputs), logits_of(model, inputs), rtol=0, atol=1e-5)
    config = AutoConfig.from_pretrained(tmp_path)
    config.spatial_name_token_ids = [[] for _ in range(config.spatial_num_classes)]
    config.spatial_name_token_ids[0] = [[5]]
    config.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"missing: \['model.spatial_projector.name_grounding"):
        AutoModelForMultimodalLM.from_pretrained(tmp_path)


def test_peft_lora_on_language_model_only_round_trips(tiny, inputs, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    model, _ = tiny
    base_dir = tmp_path / "base"
    model.save_pretrained(base_dir)
    lora = LoraConfig(
        r=4, lora_alpha=16, target_modules=LANGUAGE_MODEL_LORA_TARGETS, modules_to_save=list(SPATIAL_MODULES)
    )
    peft_model = get_peft_model(copy.deepcopy(model), lora)
    lora_modules = [name for name, _ in peft_model.named_modules() if name.endswith("lora_A")]
    assert lora_modules and all(".language_model." in name for name in lora_modules)
    assert not any("audio_tower" in name for name in lora_modules)
    trainable = {name for name, param in peft_model.named_parameters() if param.requires_grad}
    assert any("spatial_encoder" in name for name in trainable) and any(
        "spatial_projector" in name for name in trainable
    )

    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.5)
    labels = inputs["input_ids"].masked_fill(inputs["input_ids"] == model.config.audio_token_id, -100)
    peft_model.train()
    for _ in range(2):  # the second step moves lora_A too (lora_B starts at zero)
        optimizer.zero_grad()
        peft_model(**inputs, labels=labels).loss.backward()
        optimizer.step()
    peft_model.eval()
    trained = logits_of(peft_model, inputs)
    assert not torch.equal(trained, logits_of(model, inputs))

    peft_model.save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(
        SpatialQwenAudioForConditionalGeneration.from_pretrained(base_dir), tmp_path / "adapter"
    ).eval()
    assert torch.equal(logits_of(reloaded, inputs), trained)


def test_generate_and_cached_forwards_use_the_installed_cache_name(tiny, inputs, monkeypatch):
    """transformers 5.2x renamed `past_key_values` to `cache` and warns on the old name; the model (and the
    predictors' cached option scoring) use whichever name the installed transformers has, without the warning."""
    from transformers.utils import generic

    warned = []
    monkeypatch.setattr(generic.logger, "warning_once", lambda message, *args: warned.append(message))
    model, _ = tiny
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*past_key_values.*")
        with torch.no_grad():
            prompt = model(**inputs, use_cache=True)
            cache = getattr(prompt, CACHE_KWARG)
            assert cache is not None
            step = inputs["input_ids"][:, -1:]
            mask = torch.cat([inputs["attention_mask"], torch.ones_like(step)], dim=-1)
            model(input_ids=step, attention_mask=mask, **{CACHE_KWARG: cache})
        model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert [message for message in warned if "past_key_values" in message] == []
