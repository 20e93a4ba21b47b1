"""Frozen speech encoders on tiny models built from configs: freezing, frame counts/masks, batch invariance, and
Whisper log-mel + feature parity with HF's own WhisperFeatureExtractor -> encoder pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model, WhisperConfig, WhisperModel

from model.encoders import (
    EncoderConfig,
    EncoderNotFoundError,
    SpeechEncoder,
    WhisperSpeechEncoder,
    build_encoder,
    frames_for,
)

SR = 16_000
LENGTHS = [400, 5_000, 8_321, 16_000]  # 400 = the CNN's receptive field: exactly one frame


def _cnn_kwargs(norm: str) -> dict:
    return dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm=norm,
                do_stable_layer_norm=norm == "layer", hidden_dropout=0.1, layerdrop=0.1, mask_time_prob=0.2)


def tiny_hubert(norm: str = "layer") -> HubertModel:
    torch.manual_seed(0)
    return HubertModel(HubertConfig(**_cnn_kwargs(norm)))


def tiny_wav2vec2(norm: str = "layer") -> Wav2Vec2Model:
    torch.manual_seed(0)
    return Wav2Vec2Model(Wav2Vec2Config(**_cnn_kwargs(norm)))


def tiny_whisper() -> WhisperModel:
    torch.manual_seed(0)
    return WhisperModel(WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                                      decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                                      num_mel_bins=80))


def padded_batch(lengths, seed: int = 0, scale: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    t = max(lengths) + 777  # over-padded on purpose, like a bucketed collator
    audio = scale * torch.randn(len(lengths), t, generator=g) + 0.05  # DC offset: normalisation must remove it
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    audio[~mask] = 123.0  # garbage in the padding must not matter
    return audio, mask


@pytest.mark.parametrize("factory,kind", [(tiny_hubert, "hubert"), (tiny_wav2vec2, "wav2vec2")])
def test_frozen_and_stays_in_eval(factory, kind):
    enc = build_encoder(EncoderConfig(kind=kind), model=factory())
    assert isinstance(enc, SpeechEncoder) and enc.kind == kind
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training and not any(m.training for m in enc.modules())
    audio, mask = padded_batch([8_000, 6_000])
    out = enc(audio, mask)
    assert not out.features.requires_grad
    # eval mode: no dropout / LayerDrop / SpecAugment, so two calls agree exactly
    assert torch.equal(out.features, enc(audio, mask).features)


@pytest.mark.parametrize("factory", [tiny_hubert, tiny_wav2vec2])
def test_frames_mask_and_rate(factory):
    model = factory()
    enc = build_encoder(EncoderConfig(), model=model)
    assert enc.frame_rate == 50.0 and enc.dim == 32
    audio, mask = padded_batch(LENGTHS)
    out = enc(audio, mask)
    expected = model._get_feat_extract_output_lengths(torch.tensor(LENGTHS))
    assert out.features.shape == (len(LENGTHS), int(expected.max()), 32)
    assert torch.equal(out.mask.sum(-1), expected)
    assert torch.equal(out.mask, torch.arange(out.mask.shape[1])[None, :] < expected[:, None])
    assert [frames_for(enc, n) for n in LENGTHS] == expected.tolist()
    assert frames_for(enc, 399) == 0 and frames_for(enc, 0) == 0
    assert (out.features[~out.mask] == 0).all()


@pytest.mark.parametrize("factory", [tiny_hubert, tiny_wav2vec2])
def test_padded_batch_equals_single_utterances(factory):
    enc = build_encoder(EncoderConfig(), model=factory())
    audio, mask = padded_batch(LENGTHS)
    out = enc(audio, mask)
    for i, n in enumerate(LENGTHS):
        single = enc(audio[i : i + 1, :n], mask[i : i + 1, :n])
        f = int(single.mask.sum())
        torch.testing.assert_close(out.features[i, :f], single.features[0], atol=1e-5, rtol=1e-5)


def test_matches_hf_feature_extractor_pipeline():
    """Normalisation + padding + attention mask reproduce Wav2Vec2FeatureExtractor -> model (layer-norm model)."""
    from transformers import Wav2Vec2FeatureExtractor

    model = tiny_hubert()
    enc = build_encoder(EncoderConfig(), model=model)
    audio, mask = padded_batch(LENGTHS[1:])
    fe = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    inputs = fe([a[:n].numpy() for a, n in zip(audio, LENGTHS[1:])], sampling_rate=SR, padding=True,
                return_tensors="pt")
    with torch.no_grad():
        ref = model.eval()(inputs.input_values, attention_mask=inputs.attention_mask).last_hidden_state
    out = enc(audio, mask)
    torch.testing.assert_close(out.features[out.mask], ref[out.mask], atol=1e-5, rtol=1e-5)


def test_group_norm_models_get_no_attention_mask():
    """HF: group-norm (base) models were trained on zero-padded input without a mask; match that exactly."""
    model = tiny_wav2vec2("group")
    enc = build_encoder(EncoderConfig(normalize_waveform=False), model=model)
    assert not enc.use_attention_mask
    audio, mask = padded_batch([6_000, 9_000])
    out = enc(audio, mask)
    zero_padded = torch.where(mask, audio, 0)[:, :9_000]
    with torch.no_grad():
        ref = model(zero_padded).last_hidden_state
    torch.testing.assert_close(out.features[out.mask], ref[out.mask])


def test_layer_selection():
    model = tiny_hubert()
    audio, mask = padded_batch([8_000])
    with torch.no_grad():
        ref = model.eval()(torch.where(mask, audio, 0), attention_mask=mask.long(), output_hidden_states=True)
    enc = build_encoder(EncoderConfig(layer=1, normalize_waveform=False), model=model)
    torch.testing.assert_close(enc(audio, mask).features[0], ref.hidden_states[1][0, :24])
    with pytest.raises(ValueError, match="layers"):
        build_encoder(EncoderConfig(layer=3), model=tiny_hubert())


def test_auto_kind_and_mismatch():
    assert build_encoder(EncoderConfig(kind="auto"), model=tiny_hubert()).kind == "hubert"
    assert build_encoder(EncoderConfig(kind="auto"), model=tiny_wav2vec2()).kind == "wav2vec2"
    whisper = build_encoder(EncoderConfig(kind="auto"), model=tiny_whisper())
    assert isinstance(whisper, WhisperSpeechEncoder) and whisper.kind == "whisper"
    assert not any("decoder" in name for name, _ in whisper.named_parameters())
    with pytest.raises(ValueError, match="kind='whisper'"):
        build_encoder(EncoderConfig(kind="whisper"), model=tiny_hubert())


def test_config_validation():
    with pytest.raises(ValueError, match="layer"):
        EncoderConfig(layer=-2)
    with pytest.raises(ValueError, match="dtype"):
        EncoderConfig(dtype="float64")
    with pytest.raises(ValueError, match="kind"):
        EncoderConfig(kind="conformer")


def test_missing_model_gives_local_only_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("speechllm-align-tests/no-such-encoder", str(tmp_path / "no_such_dir")):
        with pytest.raises(EncoderNotFoundError, match="local model directory or a model already in the Hugging"):
            build_encoder(EncoderConfig(name_or_path=name))


def test_loads_local_directory_and_infers_do_normalize(tmp_path):
    from transformers import Wav2Vec2FeatureExtractor

    tiny_hubert().save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(do_normalize=False).save_pretrained(tmp_path)
    enc = build_encoder(EncoderConfig(name_or_path=str(tmp_path), dtype="bfloat16"))
    assert enc.kind == "hubert" and enc.normalize is False and enc.dtype == torch.bfloat16
    out = enc(*padded_batch([4_000]))
    assert out.features.dtype == torch.bfloat16 and out.mask.sum() == 12


# ---------------------------------------------------------------------------------------------------- Whisper


@pytest.fixture(scope="module")
def whisper():
    model = tiny_whisper().eval()
    return model.get_encoder(), build_encoder(EncoderConfig(), model=model)


def test_whisper_log_mel_matches_hf(whisper):
    from transformers import WhisperFeatureExtractor

    _, enc = whisper
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(37_123)).astype(np.float32)
    fe = WhisperFeatureExtractor(feature_size=80)
    ours = enc.log_mel(torch.from_numpy(x)[None]).numpy()[0]
    default = fe(x, sampling_rate=SR, return_tensors="np").input_features[0]  # HF's torch STFT path
    padded = np.pad(x, (0, fe.n_samples - len(x)))
    numpy_ref = fe._np_extract_fbank_features(padded[None], "cpu")[0]  # HF's float64 numpy path
    assert ours.shape == default.shape == numpy_ref.shape == (80, 3000)
    err_default, err_numpy = np.abs(ours - default).max(), np.abs(ours - numpy_ref).max()
    print(f"log-mel max |diff|: vs HF default (torch) {err_default:.2e}, vs HF numpy {err_numpy:.2e}")
    assert err_default < 1e-5 and err_numpy < 1e-4


def test_whisper_features_match_hf_pipeline_trimmed(whisper):
    from transformers import WhisperFeatureExtractor

    hf_encoder, enc = whisper
    assert enc.frame_rate == 50.0 and enc.dim == 32 and enc.max_samples == 30 * SR
    lengths = [320, 321, 16_000, 37_123]
    audio, mask = padded_batch(lengths, scale=0.1)
    out = enc(audio, mask)
    assert out.features.shape[1] == frames_for(enc, max(lengths))
    assert out.mask.sum(-1).tolist() == [1, 2, 50, 117] == [-(-n // 320) for n in lengths]
    fe = WhisperFeatureExtractor(feature_size=80)
    for i, n in enumerate(lengths):
        inputs = fe(audio[i, :n].numpy(), sampling_rate=SR, return_tensors="pt", return_attention_mask=True)
        with torch.no_grad():
            ref = hf_encoder(inputs.input_features).last_hidden_state[0]
        # HF's own mel mask (ceil(n / 160) frames) through conv2's stride 2 gives our frame count
        assert int(inputs.attention_mask.sum() - 1) // 2 + 1 == frames_for(enc, n)
        f = frames_for(enc, n)
        err = (out.features[i, :f] - ref[:f]).abs().max().item()
        print(f"whisper features, {n} samples: max |diff| vs HF pipeline {err:.2e}")
        assert err < 1e-4
        single = enc(audio[i : i + 1, :n], mask[i : i + 1, :n])
        torch.testing.assert_close(out.features[i, :f], single.features[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layer", [-1, 0, 1, 2])
def test_whisper_window_path_equals_hf_on_the_full_window(whisper, layer):
    """The shorter-window forward is HF's WhisperEncoder.forward: on 3000 frames it gives HF's output at every
    hidden-state index (the embeddings, after each layer, and the final LayerNorm)."""
    hf_encoder, _ = whisper
    enc = build_encoder(EncoderConfig(layer=layer, whisper_window_seconds=30), model=hf_encoder)
    audio, mask = padded_batch([37_123], scale=0.1)
    mel = enc.log_mel(torch.where(mask, audio, 0)[:, :37_123])
    with torch.no_grad():
        out = hf_encoder(mel, output_hidden_states=True)
        ref = out.last_hidden_state if layer == -1 else out.hidden_states[layer]
        torch.testing.assert_close(enc._encode_window(mel), ref, atol=1e-5, rtol=1e-5)


def test_whisper_shorter_windows_depend_only_on_the_utterance(whisper):
    hf_encoder, full = whisper
    enc = build_encoder(EncoderConfig(whisper_window_seconds=2.0), model=hf_encoder)
    assert enc.chunk == 200  # mel frames per 2 s
    lengths = [5_000, 31_000, 33_000, 80_000]  # windows of 2, 2, 4 and 6 s
    audio, mask = padded_batch(lengths, scale=0.1)
    out = enc(audio, mask)
    assert out.mask.sum(-1).tolist() == [frames_for(enc, n) for n in lengths]
    assert not out.features[~out.mask].any()
    reference = full(audio, mask)
    for i, n in enumerate(lengths):
        f = frames_for(enc, n)
        single = enc(audio[i : i + 1, :n], mask[i : i + 1, :n])  # alone: the same features as in any batch
        torch.testing.assert_close(out.features[i, :f], single.features[0], atol=1e-5, rtol=1e-5)
        # a shorter window is another input to Whisper: close to the 30 s features but not equal to them
        cos = nn.functional.cosine_similarity(out.features[i, :f], reference.features[i, :f], dim=-1)
        assert not torch.allclose(out.features[i, :f], reference.features[i, :f], atol=1e-4)
        assert cos.mean() > 0.5, cos.mean()
    with pytest.raises(ValueError, match="whisper_window_seconds"):
        EncoderConfig(whisper_window_seconds=31)


def test_whisper_rejects_audio_over_30_s(whisper):
    _, enc = whisper
    audio = torch.zeros(2, 30 * SR + 1)
    mask = torch.ones_like(audio, dtype=torch.bool)
    mask[1, SR:] = False
    with pytest.raises(ValueError, match="at most 30 s"):
        enc(audio, mask)
    # over-padding beyond 30 s is fine as long as every real utterance fits
    mask[0, 30 * SR :] = False
    assert enc(audio, mask).mask.sum(-1).tolist() == [1500, 50]


def test_rejects_non_prefix_mask(whisper):
    _, enc = whisper
    audio = torch.zeros(1, 1000)
    mask = torch.ones(1, 1000, dtype=torch.bool)
    mask[0, 10] = False
    with pytest.raises(ValueError, match="right-padded"):
        enc(audio, mask)
