"""SpatialQwenAudio processor: Qwen2-Audio's chat template and `<|AUDIO|>` expansion, with FOA audio.

Copied next to checkpoints for `trust_remote_code` loading: imports only transformers, numpy, torch and its
sibling modules.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import Qwen2AudioProcessor

from .feature_extraction_spatial_qwen_audio import audio_token_count


class SpatialQwenAudioProcessor(Qwen2AudioProcessor):
    r"""Processor for [`SpatialQwenAudioForConditionalGeneration`]: an [`FOAFeatureExtractor`] and a Qwen2 tokenizer.

    Works as [`Qwen2AudioProcessor`] (same chat template, each `<|AUDIO|>` in the text expanded to one token per
    25 Hz audio frame, counted from `feature_attention_mask`), but `audio` is First-Order Ambisonics: one
    `(4, num_samples)` clip or a list of them (mixed lengths are fine), and the output also holds
    `spatial_features` and `spatial_attention_mask`. Extractor options (`sampling_rate`, `input_format`,
    `resample`) pass through as keyword arguments.

    Example:
    ```python
    >>> messages = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Where is the dog?"}]}]
    >>> text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    >>> inputs = processor(text=text, audio=foa, sampling_rate=24000, return_tensors="pt")
    >>> output_ids = model.generate(**inputs, max_new_tokens=32)
    ```
    """

    extractor_options = ("sampling_rate", "input_format", "resample")

    def __call__(self, text=None, audio=None, audio_token_lengths=None, **kwargs):
        """Tokenise `text` with `audio` (FOA clips, see the class docstring). With `audio_token_lengths` (audio
        tokens per clip, in placeholder order) instead of `audio`, only the text is made: each `<|AUDIO|>` expanded
        to its clip's tokens, for a model given precomputed audio-encoder outputs (an embedding cache)."""
        if audio_token_lengths is not None:
            if audio is not None:
                raise ValueError("Pass either audio or audio_token_lengths, not both.")
            return self._expand_audio_tokens(text, [int(length) for length in audio_token_lengths], **kwargs)
        options = {key: kwargs.pop(key) for key in self.extractor_options if key in kwargs}
        if options.get("sampling_rate") is None:
            options.pop("sampling_rate", None)
        self._extractor_options = options
        try:
            return super().__call__(text=text, audio=audio, **kwargs)
        finally:
            self._extractor_options = {}

    def name_token_ids(self, phrases: list[str | None]) -> list[list[list[int]]]:
        """For each phrase (how a slot class reads in text; None: a class never named), the token sequences that
        spell it inside a sentence and at the start of one, lower- and upper-case: the config's
        `spatial_name_token_ids`."""
        spellings = []
        for phrase in phrases:
            variants = () if not phrase else (phrase, phrase[0].upper() + phrase[1:])
            texts = {prefix + variant for variant in variants for prefix in ("", " ")}
            sequences = {tuple(self.tokenizer.encode(text, add_special_tokens=False)) for text in texts}
            spellings.append(sorted(list(sequence) for sequence in sequences))
        return spellings

    def _expand_audio_tokens(self, text, lengths: list[int], **kwargs):
        texts = [text] if isinstance(text, str) else list(text)
        pieces = [sample.split(self.audio_token) for sample in texts]
        if sum(len(parts) - 1 for parts in pieces) != len(lengths):
            raise ValueError(
                f"Found {sum(len(parts) - 1 for parts in pieces)} {self.audio_token} placeholder(s) in the text but "
                f"{len(lengths)} audio_token_lengths; give one length per placeholder."
            )
        remaining = iter(lengths)
        expanded = [
            parts[0] + "".join(self.audio_token * next(remaining) + part for part in parts[1:]) for parts in pieces
        ]
        return self.tokenizer(expanded, **kwargs)

    def prepare_inputs_layout(self, images=None, text=None, videos=None, audio=None, **kwargs):
        # The base class would treat a (4, T) array as four mono clips: keep FOA clips whole.
        if isinstance(text, str):
            text = [text]
        elif text is not None:
            text = list(text)
        if audio is not None:
            if isinstance(audio, (np.ndarray, torch.Tensor)):
                # A batch array is a list of clips; any other array is one clip, whose shape the feature extractor
                # checks (and says how to fix: a (num_samples, 4) array needs its transpose).
                audio = list(audio) if audio.ndim == 3 else [audio]
            elif not isinstance(audio, (list, tuple)):
                raise ValueError(
                    "audio must be a (4, num_samples) First-Order Ambisonics array or a list of them, got "
                    f"{type(audio).__name__}."
                )
            audio = list(audio)
        return images, text, videos, audio

    def validate_inputs(self, images=None, text=None, videos=None, audio=None, **kwargs):
        if text is not None and audio is not None:
            num_placeholders = sum(sample.count(self.audio_token) for sample in text)
            if num_placeholders != len(audio):
                raise ValueError(
                    f"Found {num_placeholders} {self.audio_token} placeholder(s) in the text but {len(audio)} audio "
                    f"clip(s); put one {self.audio_token} per clip (the chat template does it for each audio item)."
                )
        super().validate_inputs(images=images, text=text, videos=videos, audio=audio, **kwargs)

    def _process_audio(self, audio, **kwargs):
        # Without a `sampling_rate`, the feature extractor assumes its own rate and warns: never assumed silently here.
        options = dict(getattr(self, "_extractor_options", {}))
        audio_inputs = self.feature_extractor(audio, return_tensors=kwargs.get("return_tensors"), **options)
        num_tokens = audio_token_count(np.asarray(audio_inputs["feature_attention_mask"]).sum(-1))
        audio_inputs["num_audio_tokens"] = [int(n) for n in num_tokens]
        replacements = [self.replace_audio_token(audio_inputs, audio_idx=index) for index in range(len(audio))]
        return audio_inputs, replacements

    @property
    def model_input_names(self):
        names = self.tokenizer.model_input_names + self.feature_extractor.model_input_names
        return list(dict.fromkeys(names))


__all__ = ["SpatialQwenAudioProcessor"]
