"""Continuo in DawDreamer (PyPI), a JUCE render host that loads only the first plugin class of
a VST3 bundle (DawDreamer issue #90): Style from `Continuo.vst3`, Voice from the Voice-only
bundle `Continuo Voice.vst3` (`cargo xtask bundle-voice`). DawDreamer also renders faster than
real time while telling plugins they play live, so both get Offline Render = Always (they wait
for their worker; with Auto a late worker is heard, as it must be live: dry for Style, silence
for Voice).

Checks, at 48 kHz with 128-sample blocks and at 44.1 kHz with 512:
- Style: audio from DawDreamer's playback processor comes out restyled, equal to
  `continuo style` on the same WAV once shifted by exactly the latency Style reports (the lag
  of best match is searched, not assumed);
- Voice: an instrument (no audio input, stereo out) listing its parameters by name; the notes
  the host adds play, equal to `continuo render` of the same notes at exactly the reported
  latency; a parameter set through the host is heard (Octave −1 halves the pitch).

Usage: python dawdreamer_host.py path/to/target/bundled path/to/continuo   (run by `cargo xtask test`)
"""
import os
import subprocess
import sys
import tempfile

import dawdreamer as daw
import numpy as np

from host_support import check, finish, write_midi

bundled, cli = sys.argv[1], sys.argv[2]
STYLE_BUNDLE = os.path.join(bundled, "Continuo.vst3")
VOICE_BUNDLE = os.path.join(bundled, "Continuo Voice.vst3")


# (key, velocity, start s, end s): a leap, a quiet note and an overlap (two voices at once).
NOTES = [(69, 100, 0.25, 1.0), (72, 60, 1.0, 1.75), (64, 110, 1.5, 2.5)]
DURATION = 3.0


def write_float_wav(path, channels, sample_rate):
    """A 32-bit float WAV of `channels` (the stdlib writes only PCM)."""
    frames = np.ascontiguousarray(np.asarray(channels, dtype="<f4").T).tobytes()
    count = len(channels)
    fmt = ((3).to_bytes(2, "little") + count.to_bytes(2, "little")
           + sample_rate.to_bytes(4, "little") + (sample_rate * 4 * count).to_bytes(4, "little")
           + (4 * count).to_bytes(2, "little") + (32).to_bytes(2, "little"))
    with open(path, "wb") as f:
        f.write(b"RIFF" + (4 + 8 + len(fmt) + 8 + len(frames)).to_bytes(4, "little") + b"WAVE")
        f.write(b"fmt " + len(fmt).to_bytes(4, "little") + fmt)
        f.write(b"data" + len(frames).to_bytes(4, "little") + frames)


def read_float_wav(path):
    """The first channel of a 32-bit float WAV written by the CLI."""
    with open(path, "rb") as f:
        data = f.read()
    at = 12
    while at + 8 <= len(data):
        tag, size = data[at:at + 4], int.from_bytes(data[at + 4:at + 8], "little")
        if tag == b"fmt ":
            channels = int.from_bytes(data[at + 10:at + 12], "little")
        if tag == b"data":
            samples = np.frombuffer(data[at + 8:at + 8 + size], dtype="<f4")
            return samples.reshape(-1, channels)[:, 0]
        at += 8 + size + (size & 1)
    raise ValueError(f"{path}: no data chunk")


def offline_render_always(processor):
    """Sets Offline Render to Always (DawDreamer says it plays live); returns the parameter names."""
    names = [processor.get_parameter_name(i) for i in range(processor.get_plugin_parameter_size())]
    processor.set_parameter(names.index("Offline Render"), 1.0)
    return names


def render_in_host(sample_rate, block, octave=None):
    engine = daw.RenderEngine(sample_rate, block)
    voice = engine.make_plugin_processor("voice", VOICE_BUNDLE)
    names = offline_render_always(voice)
    if octave is not None:
        voice.set_parameter(names.index("Octave"), octave)
    for key, velocity, start, end in NOTES:
        voice.add_midi_note(key, velocity, start, end - start)
    engine.load_graph([(voice, [])])
    engine.render(DURATION)
    # The engine owns the processor: keep it alive while the processor is used.
    return engine, voice, names, engine.get_audio()


def restyle_in_host(sample_rate, block, stereo):
    engine = daw.RenderEngine(sample_rate, block)
    source = engine.make_playback_processor("source", stereo)
    style = engine.make_plugin_processor("style", STYLE_BUNDLE)
    offline_render_always(style)
    engine.load_graph([(source, []), (style, ["source"])])
    engine.render(stereo.shape[1] / sample_rate)
    return engine, style, engine.get_audio()


def run_cli(command, input_name, write_input, *options):
    """`continuo COMMAND IN -o OUT OPTIONS…` on the file `write_input(IN)` writes; returns the
    first channel of OUT (a silent sample if the CLI failed, which is reported)."""
    with tempfile.TemporaryDirectory() as tmp:
        source, out = os.path.join(tmp, input_name), os.path.join(tmp, "out.wav")
        write_input(source)
        run = subprocess.run([cli, command, source, "-o", out, *options],
                             capture_output=True, text=True)
        check(run.returncode == 0, f"CLI {command} ran: {run.stdout.strip()} {run.stderr.strip()}")
        return read_float_wav(out) if run.returncode == 0 else np.zeros(1)


def best_lag(host, reference, max_lag):
    """The shift of the host's output that matches the reference best, and that correlation."""
    n = min(len(reference), len(host) - max_lag)
    scores = [float(np.corrcoef(host[lag:lag + n], reference[:n])[0, 1]) for lag in range(max_lag)]
    lag = int(np.argmax(scores))
    return lag, scores[lag]


def dominant_hz(signal, sample_rate):
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.argmax(spectrum)) * sample_rate / len(signal)


for sample_rate, block in ((48_000, 128), (44_100, 512)):
    label = f"{sample_rate} Hz, {block}-sample blocks"

    # Style restyles the mono sum, so the channels must not cancel.
    t = np.arange(2 * sample_rate) / sample_rate
    tone = (0.4 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1_375 * t))
    stereo = np.stack([tone, 0.5 * tone]).astype(np.float32)
    engine, style, restyled = restyle_in_host(sample_rate, block, stereo)
    latency = style.get_latency_samples()
    reference = run_cli("style", "in.wav", lambda path: write_float_wav(path, stereo, sample_rate),
                        "--block", str(block))
    peak = float(np.max(np.abs(restyled))) if restyled.size else 0.0
    check(bool(np.all(np.isfinite(restyled))) and peak > 0.01,
          f"{label}: Style restyles the host's audio (peak {peak:.2f})")
    lag, correlation = best_lag(restyled[0], reference, max_lag=2 * latency + block)
    check(lag == latency and correlation > 0.99,
          f"{label}: Style sounds like `continuo style`, {lag} samples later (correlation "
          f"{correlation:.4f}); reported latency {latency}")
    engine, voice, names, played = render_in_host(sample_rate, block)
    check(voice.get_num_input_channels() == 0 and voice.get_num_output_channels() == 2,
          f"{label}: Voice is an instrument, {voice.get_num_input_channels()} in / "
          f"{voice.get_num_output_channels()} out")
    missing = [p for p in ("Style", "Attack", "Release", "Play Mode", "Voices", "Octave")
               if p not in names]
    check(not missing, f"{label}: Voice's parameters listed by name (missing: {missing})")
    peak = float(np.max(np.abs(played))) if played.size else 0.0
    check(bool(np.all(np.isfinite(played))) and peak > 0.01,
          f"{label}: Voice plays the notes the host adds (peak {peak:.2f})")
    latency = voice.get_latency_samples()
    reference = run_cli("render", "notes.mid", lambda path: write_midi(path, NOTES),
                        "--rate", str(sample_rate), "--block", str(block))
    lag, correlation = best_lag(played[0], reference, max_lag=2 * latency + block)
    check(lag == latency and correlation > 0.99,
          f"{label}: Voice sounds like `continuo render`, {lag} samples later (correlation "
          f"{correlation:.4f}); reported latency {latency}")

    # A parameter set through the host: the first note, an octave down.
    *_, lower = render_in_host(sample_rate, block, octave=0.25)  # normalised: −2…+2, so 0.25 = −1
    window = slice(latency + int(0.5 * sample_rate), latency + int(0.9 * sample_rate))
    normal_hz, lower_hz = dominant_hz(played[0, window], sample_rate), dominant_hz(lower[0, window], sample_rate)
    check(abs(normal_hz - 440) < 5 and abs(lower_hz - 220) < 5,
          f"{label}: Voice's Octave set by the host is heard (A4 at {normal_hz:.1f} Hz, "
          f"with Octave −1 at {lower_hz:.1f} Hz)")

finish("dawdreamer")
