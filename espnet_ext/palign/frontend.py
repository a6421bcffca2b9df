"""Frontends with prosody: a log-mel + pitch frontend (what an emotion encoder needs and s3prl's ``mel``
upstream lacks), and frozen Whisper encoder features + pitch and energy (words and prosody, offline).

s3prl's ``mel`` applies per-utterance CMVN, which removes loudness; ESPnet's ``DefaultFrontend`` keeps it.
This frontend is ``DefaultFrontend``'s log-mels plus a pitch track computed in torch (YIN), so that the
encoder sees F0 and voicing directly, on any device and without pyworld:
  log_f0      log F0 of voiced frames; unvoiced frames get the utterance's voiced mean
  rel_log_f0  log F0 minus the utterance's voiced mean: the contour, independent of the voice's base pitch
  voicing     1 - YIN's aperiodicity at the chosen lag, in [0, 1]
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.asr.frontend.default import DefaultFrontend

PITCH_FEATURES = ("log_f0", "rel_log_f0", "voicing")


def yin_pitch(x: torch.Tensor, fs: int = 16000, hop_length: int = 160, win_length: int = 400,
              fmin: float = 60.0, fmax: float = 500.0, threshold: float = 0.15) -> Tuple[torch.Tensor, torch.Tensor]:
    """F0 (Hz) and voicing in [0, 1] of waveforms (B, T), one frame every ``hop_length`` samples, centred
    as ESPnet's STFT frames are (T // hop + 1 frames). YIN (de Cheveigné & Kawahara 2002): the cumulative
    mean normalised difference, its first dip under ``threshold``, parabolic refinement. Unvoiced frames
    (no dip, or silence) get F0 0."""
    max_lag = int(fs / fmin)
    min_lag = max(2, int(fs / fmax))
    span = win_length + max_lag
    x = x.float()
    if x.shape[1] < span:  # very short input: pad with silence so that one frame fits
        x = F.pad(x, (0, span - x.shape[1]))
    n_frames = x.shape[1] // hop_length + 1
    # Frame starts are centred like the STFT's: frame i covers [i*hop - win/2, i*hop - win/2 + span).
    padded = F.pad(x, (win_length // 2, span + hop_length))
    frames = padded.unfold(1, span, hop_length)[:, :n_frames]                    # (B, N, span)
    n_fft = 1 << (span - 1).bit_length()
    window = frames[..., :win_length]
    spec = torch.fft.rfft(frames, n_fft) * torch.fft.rfft(window, n_fft).conj()
    corr = torch.fft.irfft(spec, n_fft)[..., : max_lag + 1]                       # r(tau), tau = 0..max_lag
    sq = F.pad(frames.pow(2).cumsum(-1), (1, 0))
    energy = sq[..., win_length: win_length + max_lag + 1] - sq[..., : max_lag + 1]  # sum of x[tau:tau+W]^2
    diff = (energy[..., :1] + energy - 2 * corr).clamp(min=0)                      # d(tau)
    taus = torch.arange(max_lag + 1, device=x.device, dtype=x.dtype)
    cumulative = diff[..., 1:].cumsum(-1).clamp(min=1e-8)
    cmnd = torch.cat([torch.ones_like(diff[..., :1]), diff[..., 1:] * taus[1:] / cumulative], -1)
    cmnd[..., :min_lag] = float("inf")
    below = cmnd < threshold
    has_dip = below.any(-1)
    first = torch.where(has_dip, below.float().argmax(-1), cmnd.argmin(-1))
    # From the first dip, walk down to its local minimum (at most half a period further).
    reach = (first // 2).clamp(min=1)
    offsets = torch.arange(max_lag + 1, device=x.device)
    window_mask = (offsets >= first[..., None]) & (offsets <= (first + reach)[..., None])
    tau = torch.where(window_mask, cmnd, torch.full_like(cmnd, float("inf"))).argmin(-1)
    tau = tau.clamp(min_lag + 1, max_lag - 1)
    c0, c1, c2 = (cmnd.gather(-1, (tau + k)[..., None]).squeeze(-1) for k in (-1, 0, 1))
    curvature = c0 - 2 * c1 + c2
    shift = torch.where(curvature.abs() > 1e-8, 0.5 * (c0 - c2) / curvature, torch.zeros_like(c1)).clamp(-1, 1)
    f0 = fs / (tau.to(x.dtype) + shift)
    aperiodicity = torch.nan_to_num(c1, nan=1.0, posinf=1.0)
    loud = energy[..., 0] > 1e-6 * win_length  # below about -60 dBFS: silence
    voiced = has_dip & loud
    voicing = ((1 - aperiodicity).clamp(0, 1)) * loud
    return torch.where(voiced, f0, torch.zeros_like(f0)), voicing


def pitch_track(speech: torch.Tensor, lengths: torch.Tensor, names: Sequence[str], fs: int, hop_length: int,
                win_length: int, fmin: float, fmax: float) -> torch.Tensor:
    """The pitch features ``names`` (see the module docstring) of waveforms (B, T) with valid ``lengths``:
    (B, N, len(names)), one frame every ``hop_length`` samples, zero beyond each length."""
    f0, voicing = yin_pitch(speech, fs, hop_length, win_length, fmin, fmax)
    frames = torch.arange(f0.shape[1], device=f0.device)[None] < (lengths // hop_length + 1)[:, None]
    voiced = (f0 > 0) & frames
    log_f0 = torch.log(f0.clamp(min=1.0))
    mean = (log_f0 * voiced).sum(1) / voiced.sum(1).clamp(min=1)
    mean = torch.where(voiced.any(1), mean, torch.full_like(mean, float(torch.log(torch.tensor(150.0)))))
    log_f0 = torch.where(voiced, log_f0, mean[:, None])
    out = {"log_f0": log_f0 - 5.0,  # centred near log(150 Hz)
           "rel_log_f0": log_f0 - mean[:, None],
           "voicing": voicing}
    return torch.stack([out[name] for name in names], -1) * frames[..., None]


class MelPitchFrontend(AbsFrontend):
    """ESPnet ``DefaultFrontend`` log-mels (loudness kept) + pitch features, at the same frame rate."""

    def __init__(self, fs: int = 16000, n_fft: int = 512, win_length: int = 400, hop_length: int = 160,
                 n_mels: int = 80, fmin: float = 60.0, fmax: float = 500.0,
                 pitch_features: Sequence[str] = PITCH_FEATURES, pitch_scale: float = 1.0):
        super().__init__()
        unknown = sorted(set(pitch_features) - set(PITCH_FEATURES))
        if unknown:
            raise ValueError(f"unknown pitch feature(s) {unknown}; known: {list(PITCH_FEATURES)}")
        self.mel = DefaultFrontend(fs=fs, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
                                   n_mels=n_mels, fmin=0, fmax=fs // 2)
        self.fs, self.hop_length, self.win_length = fs, hop_length, win_length
        self.fmin, self.fmax = fmin, fmax
        self.pitch_features = list(pitch_features)
        self.pitch_scale = pitch_scale  # pitch dims are few beside 80 mels: optionally weight them up
        self.n_mels = n_mels

    def output_size(self) -> int:
        return self.n_mels + len(self.pitch_features)

    def pitch(self, speech: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, N, len(pitch_features)) for waveforms (B, T) with valid ``lengths``."""
        return pitch_track(speech, lengths, self.pitch_features, self.fs, self.hop_length, self.win_length,
                           self.fmin, self.fmax) * self.pitch_scale

    def forward(self, input: torch.Tensor, input_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        mel, mel_lengths = self.mel(input, input_lengths)
        if not self.pitch_features:
            return mel, mel_lengths
        pitch = self.pitch(input, input_lengths)
        n = mel.shape[1]
        if pitch.shape[1] < n:
            pitch = F.pad(pitch, (0, 0, 0, n - pitch.shape[1]))
        return torch.cat([mel, pitch[:, :n].to(mel.dtype)], -1), mel_lengths


class WhisperPitchFrontend(AbsFrontend):
    """A frozen Whisper encoder (CTranslate2, through faster-whisper) at 50 frames/s, + pitch and energy.

    What was said is hard to learn from a few thousand utterances; a pre-trained speech encoder already
    knows it, as BLSP-Emo's Whisper does. Whisper's log-mels are scaled to each utterance's maximum, so
    the loudness and the pitch track (YIN, as ``mel_pitch``) are added beside its features:
      log_energy  frame log-energy (natural log of the mean square, level kept), 20 ms frames
    The encoder runs on the utterance's own length (no 30 s padding: ~20x cheaper; positions are
    Whisper's first ones). Its weights are not a torch module: frozen, and in no checkpoint. ``model``:
    a faster-whisper model name or CTranslate2 folder; default the offline Whisper tiny.en.
    """

    def __init__(self, model: str = "", fs: int = 16000, compute_type: str = "int8", device: str = "cpu",
                 pitch_features: Sequence[str] = PITCH_FEATURES, log_energy: bool = True, cpu_threads: int = 0):
        super().__init__()
        if fs != 16000:
            raise ValueError("Whisper needs 16 kHz audio (stage 2 resamples to --fs 16000)")
        unknown = sorted(set(pitch_features) - set(PITCH_FEATURES))
        if unknown:
            raise ValueError(f"unknown pitch feature(s) {unknown}; known: {list(PITCH_FEATURES)}")
        from faster_whisper import WhisperModel

        from espnet_ext.whisper_asr import default_model_path

        self.model_path = model or default_model_path()
        whisper = WhisperModel(self.model_path, device=device, compute_type=compute_type,
                               cpu_threads=cpu_threads or torch.get_num_threads())  # the job's share of the cores
        self._whisper = whisper  # not a submodule: frozen, outside state_dict()
        self.fs, self.hop_length, self.win_length = fs, 320, 400  # output frames: 20 ms
        self.fmin, self.fmax = 60.0, 500.0
        self.pitch_features = list(pitch_features)
        self.log_energy = log_energy
        self.whisper_size = self._probe_size()

    def _probe_size(self) -> int:
        return self._encode([torch.zeros(3200)]).shape[-1]

    def output_size(self) -> int:
        return self.whisper_size + len(self.pitch_features) + int(self.log_energy)

    def _encode(self, waves: Sequence[torch.Tensor]) -> torch.Tensor:
        import ctranslate2
        import numpy as np

        fe = self._whisper.feature_extractor
        mels = [fe(w.detach().float().cpu().numpy(), padding=0) for w in waves]  # (80, frames) each
        width = max(m.shape[1] for m in mels)
        width += width % 2
        batch = np.zeros((len(mels), mels[0].shape[0], width), dtype=np.float32)
        for i, m in enumerate(mels):
            batch[i, :, : m.shape[1]] = m
            batch[i, :, m.shape[1]:] = m.min()  # Whisper's padding is silence: the floor of the log-mel
        out = self._whisper.model.encode(ctranslate2.StorageView.from_array(batch))
        return torch.from_numpy(np.array(out))

    def forward(self, input: torch.Tensor, input_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            # One utterance at a time: Whisper's encoder has no padding mask, so in a batch a short
            # utterance's frames would depend on its neighbours' lengths; alone, a file gets the same
            # features in training, in stage 3's dump and in the demo.
            each = [self._encode([input[i, : int(n)]])[0] for i, n in enumerate(input_lengths)]
            feats = torch.nn.utils.rnn.pad_sequence(each, batch_first=True).to(input.device)
            lengths = torch.div(input_lengths + self.hop_length - 1, self.hop_length, rounding_mode="floor")
            lengths = torch.minimum(lengths, torch.tensor([len(e) for e in each], device=lengths.device))
            extra = []
            if self.pitch_features:
                extra.append(pitch_track(input, input_lengths, self.pitch_features, self.fs, self.hop_length,
                                         self.win_length, self.fmin, self.fmax))
            if self.log_energy:
                frames = F.pad(input.float(), (self.win_length // 2, self.win_length)).unfold(
                    1, self.win_length, self.hop_length)
                extra.append(torch.log(frames.pow(2).mean(-1, keepdim=True) + 1e-5))
            for x in extra:
                n = feats.shape[1]
                x = F.pad(x, (0, 0, 0, max(0, n - x.shape[1])))[:, :n].to(feats.dtype)
                feats = torch.cat([feats, x], -1)
            valid = torch.arange(feats.shape[1], device=feats.device)[None] < lengths[:, None]
        return feats * valid[..., None], lengths


def register_in_espnet_task(task_module) -> None:
    """Offer ``frontend: mel_pitch`` and ``whisper_pitch`` in another ESPnet task (e.g. ``espnet2.tasks.cls``),
    so that a baseline built with ESPnet's own task can use the same frontend as ParaAlign."""
    task_module.frontend_choices.classes["mel_pitch"] = MelPitchFrontend
    task_module.frontend_choices.classes["whisper_pitch"] = WhisperPitchFrontend
