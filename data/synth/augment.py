"""Pure-numpy/scipy audio augmentation for the synthetic TTS corpus.

Every random function takes an explicit ``numpy.random.Generator`` so the caller decides the
seeding: ``data.synth`` derives one generator per utterance from ``(seed, task, index)``, which
makes the written audio independent of worker count and scheduling.

Signals are mono float arrays (float64 inside, any float dtype accepted) in roughly [-1, 1].

Conventions (chosen once, documented here, relied on by tests):
    * Speech power for SNR is measured over *active* frames only (20 ms frames within
      ``ACTIVE_FLOOR_DB`` of the loudest frame), in the spirit of ITU-T P.56 active speech
      level. TTS output has leading/trailing silence and pauses whose amount varies with speed;
      measuring over the whole signal would make the perceived SNR depend on them.
      Noise power is measured over the whole noise signal (it is stationary).
    * Reverb returns the *full* convolution, ``len(x) + len(ir) - 1`` samples, so the decay
      tail is not cut off; the manifest duration is computed from the written file.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy import signal

NOISE_COLORS = ("white", "pink", "brown")
"""Supported noise colours; the power spectral density falls as 1/f**k with k = 0, 1, 2."""

_COLOR_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}

ACTIVE_FLOOR_DB = 40.0
"""Frames quieter than the loudest frame by more than this count as silence for speech power."""

_EPS = 1e-12


def colored_noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a 1/f**k power spectrum, scaled to unit RMS.

    The noise is made by shaping white Gaussian noise in the frequency domain (amplitude times
    f**(-k/2)), which gives exact slopes without the drift problems of integrating white noise.

    Args:
        n: Number of samples.
        color: One of ``NOISE_COLORS``.
        rng: Source of randomness.

    Returns:
        float64 array of length ``n`` with zero mean and RMS 1 (all zeros if ``n`` is 0).
    """
    if color not in _COLOR_EXPONENT:
        raise ValueError(f"unknown noise color {color!r}; expected one of {NOISE_COLORS}")
    if n <= 0:
        return np.zeros(0)
    white = rng.standard_normal(n)
    k = _COLOR_EXPONENT[color]
    if k == 0.0:
        noise = white
    else:
        spec = np.fft.rfft(white)
        freqs = np.arange(spec.size, dtype=np.float64)
        # DC gets the gain of the lowest non-zero bin instead of infinity; it is removed below.
        freqs[0] = freqs[1] if spec.size > 1 else 1.0
        spec *= freqs ** (-k / 2.0)
        noise = np.fft.irfft(spec, n=n)
    noise = noise - noise.mean()
    rms = np.sqrt(np.mean(noise**2))
    return noise / rms if rms > _EPS else noise


def active_power(x: np.ndarray, sr: int, frame_s: float = 0.02,
                 floor_db: float = ACTIVE_FLOOR_DB) -> float:
    """Mean power of the non-silent part of a signal.

    Args:
        x: Mono signal.
        sr: Sample rate in Hz (sets the frame length).
        frame_s: Frame length in seconds.
        floor_db: Frames more than this many dB below the loudest frame are ignored.

    Returns:
        Mean of ``x**2`` over active frames (0.0 for an all-zero signal).
    """
    x = np.asarray(x, dtype=np.float64)
    frame = max(1, int(round(frame_s * sr)))
    n_frames = x.size // frame
    if n_frames == 0:
        return float(np.mean(x**2)) if x.size else 0.0
    # A trailing partial frame is folded in as its own frame so no samples are ignored.
    powers = [np.mean(x[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1)]
    if x.size > n_frames * frame:
        powers.append(np.array([np.mean(x[n_frames * frame:] ** 2)]))
    p = np.concatenate(powers)
    peak = p.max()
    if peak <= 0.0:
        return 0.0
    active = p >= peak * 10.0 ** (-floor_db / 10.0)
    return float(p[active].mean())


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, sr: int) -> np.ndarray:
    """Add noise to speech at an exact signal-to-noise ratio.

    SNR is ``10 log10(P_speech / P_noise)`` with ``P_speech = active_power(speech)`` and
    ``P_noise`` the mean power of the scaled noise over its whole length.

    Args:
        speech: Clean mono signal.
        noise: Noise of the same length (any scale).
        snr_db: Requested SNR in dB.
        sr: Sample rate of both signals.

    Returns:
        ``speech + g * noise`` as float64 (not normalised: the caller decides the peak).
    """
    speech = np.asarray(speech, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if speech.shape != noise.shape:
        raise ValueError(f"speech {speech.shape} and noise {noise.shape} differ in shape")
    p_speech = active_power(speech, sr)
    p_noise = float(np.mean(noise**2)) if noise.size else 0.0
    if p_speech <= 0.0 or p_noise <= 0.0:
        return speech.copy()
    gain = np.sqrt(p_speech / (p_noise * 10.0 ** (snr_db / 10.0)))
    return speech + gain * noise


def add_noise(speech: np.ndarray, color: str, snr_db: float, sr: int,
              rng: np.random.Generator) -> np.ndarray:
    """Mix freshly generated coloured noise into ``speech`` at ``snr_db`` (see ``mix_at_snr``)."""
    return mix_at_snr(speech, colored_noise(len(speech), color, rng), snr_db, sr)


def synthetic_rir(rt60: float, sr: int, rng: np.random.Generator, drr_db: float = 3.0,
                  predelay_s: float = 0.003) -> np.ndarray:
    """Exponentially decaying noise room impulse response with a direct path.

    The late part is Gaussian noise whose amplitude falls by 60 dB after ``rt60`` seconds; it
    starts ``predelay_s`` after the unit direct-path impulse at sample 0 and its energy is set
    ``drr_db`` below the direct path's (direct-to-reverberant ratio).

    Args:
        rt60: Reverberation time in seconds (> 0).
        sr: Sample rate in Hz.
        rng: Source of randomness.
        drr_db: Direct-to-reverberant energy ratio in dB.
        predelay_s: Gap between direct path and the reverberant tail.

    Returns:
        float64 impulse response of ``round((predelay_s + rt60) * sr)`` samples, ``ir[0] == 1``.
    """
    if rt60 <= 0:
        raise ValueError(f"rt60 must be > 0 seconds, got {rt60}")
    start = max(1, int(round(predelay_s * sr)))
    n_tail = max(1, int(round(rt60 * sr)))
    t = np.arange(n_tail) / sr
    # Amplitude envelope exp(-a t) with a = 3 ln(10) / rt60 is -60 dB in power at t = rt60.
    tail = rng.standard_normal(n_tail) * np.exp(-3.0 * np.log(10.0) * t / rt60)
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail**2))
    ir = np.zeros(start + n_tail)
    ir[0] = 1.0
    ir[start:] = tail
    return ir


def add_reverb(x: np.ndarray, rt60: float, sr: int, rng: np.random.Generator,
               drr_db: float = 3.0) -> np.ndarray:
    """Convolve with a ``synthetic_rir`` and keep the full tail.

    The output is rescaled to the input's peak so reverb never pushes the signal into clipping
    (a dense tail can add up well above the dry peak).

    Args:
        x: Dry mono signal.
        rt60: Reverberation time in seconds.
        sr: Sample rate in Hz.
        rng: Source of randomness.
        drr_db: Direct-to-reverberant energy ratio in dB.

    Returns:
        float64 array of ``len(x) + len(ir) - 1`` samples.
    """
    x = np.asarray(x, dtype=np.float64)
    ir = synthetic_rir(rt60, sr, rng, drr_db=drr_db)
    y = signal.fftconvolve(x, ir, mode="full")
    peak_in, peak_out = np.max(np.abs(x), initial=0.0), np.max(np.abs(y), initial=0.0)
    return y * (peak_in / peak_out) if peak_out > _EPS else y


def peak_normalize(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Scale so that ``max|x| == peak`` (silence is returned unchanged)."""
    x = np.asarray(x, dtype=np.float64)
    m = np.max(np.abs(x), initial=0.0)
    return x * (peak / m) if m > _EPS else x.copy()


def protect_clipping(x: np.ndarray, limit: float = 0.999) -> np.ndarray:
    """Scale down only if ``max|x|`` exceeds ``limit``; quieter signals are left as they are."""
    x = np.asarray(x, dtype=np.float64)
    m = np.max(np.abs(x), initial=0.0)
    return x * (limit / m) if m > limit else x.copy()


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling with ``scipy.signal.resample_poly`` (e.g. 22050 -> 16000 Hz).

    Output length is ``ceil(len(x) * sr_out / sr_in)``.
    """
    x = np.asarray(x, dtype=np.float64)
    if sr_in == sr_out:
        return x.copy()
    g = gcd(int(sr_in), int(sr_out))
    return signal.resample_poly(x, int(sr_out) // g, int(sr_in) // g)


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] to int16 with rounding and saturation (what the FLAC file stores)."""
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32767.0), -32768, 32767).astype(np.int16)
