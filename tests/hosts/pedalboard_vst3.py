"""VST3 check in a real host (pedalboard, PyPI): the three plugins load, Style's parameters are
listed by name, audio through Style comes out aligned, as the reported latency says, and the
restyled output equals the `continuo style` CLI's on the same WAV; Voice plays MIDI sent by the
host and sounds like `continuo render` on the same notes. For every plugin every
parameter's text reads back as the same value (text -> value -> text), and the host's saved
state (`raw_state`) is reproducible: save -> load -> save gives the same bytes.

Usage: python pedalboard_vst3.py path/to/Continuo.vst3 path/to/continuo   (run by `cargo xtask test`)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import pedalboard

from host_support import check, finish, write_midi

bundle = sys.argv[1]


names = pedalboard.VST3Plugin.get_plugin_names_for_file(bundle)
check(set(names) >= {"Continuo Style", "Continuo Phrase", "Continuo Voice"},
      f"bundle lists the three plugins: {names}")

style = pedalboard.load_plugin(bundle, plugin_name="Continuo Style")
expected = {"style", "style_b", "style_morph", "pitch_shift", "octave", "input_gain", "gate",
            "harmonic_noise", "brightness", "mix", "output_gain_db", "bypass"}
# pedalboard appends units to some names (output_gain_db), so match by prefix.
missing = [e for e in expected if not any(p.startswith(e) for p in style.parameters)]
check(not missing, f"Style parameters: {sorted(style.parameters)} (missing: {missing})")
latency = style.reported_latency_samples
check(latency > 0, f"Style reports latency {latency}")

sample_rate = 48_000
t = np.arange(sample_rate * 2) / sample_rate
tone = (0.4 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1_375 * t)).astype(np.float32)
stereo = np.stack([tone, -tone])


def aligned_error(output, gain=1.0):
    """Max error against the input, allowing for a host that does or does not compensate latency."""
    settle = int(0.1 * sample_rate)  # parameter smoothing (20 ms) and start-up
    errors = {}
    for lag in (0, latency):
        n = output.shape[1] - lag
        errors[lag] = float(np.max(np.abs(output[:, lag + settle:] - gain * stereo[:, settle:n])))
    lag = min(errors, key=errors.get)
    return lag, errors[lag]


style.mix = 0.0
lag, error = aligned_error(style(stereo, sample_rate))
check(error < 1e-5, f"Mix 0%: dry path aligned (lag {lag}), max error {error:.2e}")

# Restyled: the plugin in the host against the CLI on the same file, same engine block size.
style.mix = 100.0
style.reset()
block = 8192
# Style restyles the mono sum, so the channels must not cancel (as [tone, −tone] would).
restyle_input = np.stack([tone, 0.5 * tone])
output = style(restyle_input, sample_rate, buffer_size=block)
check(bool(np.all(np.isfinite(output))), "Mix 100%: output finite")
with tempfile.TemporaryDirectory() as tmp:
    wav_in, wav_out = os.path.join(tmp, "in.wav"), os.path.join(tmp, "out.wav")
    with pedalboard.io.AudioFile(wav_in, "w", sample_rate, 2, bit_depth=32) as f:
        f.write(restyle_input)
    run = subprocess.run([sys.argv[2], "style", wav_in, "-o", wav_out, "--block", str(block)],
                         capture_output=True, text=True)
    check(run.returncode == 0, f"CLI style ran: {run.stdout.strip()} {run.stderr.strip()}")
    with pedalboard.io.AudioFile(wav_out) as f:
        cli = f.read(f.frames)
n = min(cli.shape[1], output.shape[1])
difference = float(np.max(np.abs(cli[:, :n] - output[:, :n])))
level = float(np.max(np.abs(cli)))
check(level > 0.01 and difference < 1e-4,
      f"Mix 100%: plugin in pedalboard = CLI (max difference {difference:.2e}, CLI peak {level:.2f})")

phrase = pedalboard.load_plugin(bundle, plugin_name="Continuo Phrase")
check({"thru", "history_bars"} <= set(phrase.parameters), f"Phrase parameters: {sorted(phrase.parameters)}")


# Voice: the host sends MIDI; the plugin plays it as the CLI renders the same notes.
voice = pedalboard.load_plugin(bundle, plugin_name="Continuo Voice")
check(voice.is_instrument, "Voice is an instrument")
own = sorted(p for p in voice.parameters if not p.startswith("midi_ch_"))
missing = [e for e in ("attack", "release", "play_mode", "style", "voices")
           if not any(p.startswith(e) for p in own)]
check(not missing, f"Voice parameters: {own} (missing: {missing})")
notes = [(69, 100, 0.25, 1.0), (72, 80, 1.0, 1.75), (64, 110, 1.75, 2.5)]
messages = []
for key, velocity, start, end in notes:
    messages += [(bytes([0x90, key, velocity]), start), (bytes([0x80, key, 0]), end)]
played = voice(messages, duration=3.0, sample_rate=sample_rate, buffer_size=block)
check(bool(np.all(np.isfinite(played))) and float(np.max(np.abs(played))) > 0.01,
      f"Voice plays the MIDI it is sent (peak {float(np.max(np.abs(played))):.2f})")
voice_latency = voice.reported_latency_samples
with tempfile.TemporaryDirectory() as tmp:
    midi, wav_out = os.path.join(tmp, "notes.mid"), os.path.join(tmp, "voice.wav")
    write_midi(midi, notes)
    run = subprocess.run([sys.argv[2], "render", midi, "-o", wav_out, "--block", str(block)],
                         capture_output=True, text=True)
    check(run.returncode == 0, f"CLI render ran: {run.stdout.strip()} {run.stderr.strip()}")
    with pedalboard.io.AudioFile(wav_out) as f:
        rendered = f.read(f.frames)[0]
best = None
for lag in (0, voice_latency):
    host = played[0, lag:lag + int(2.6 * sample_rate)]
    n = min(len(host), len(rendered))
    corr = float(np.corrcoef(host[:n], rendered[:n])[0, 1])
    best = corr if best is None else max(best, corr)
check(best > 0.99, f"Voice in pedalboard sounds like `continuo render` (correlation {best:.4f}, latency {voice_latency})")


def text_round_trips(plugin, name):
    """Every parameter: the text shown for a value parses back to a value shown the same way."""
    broken = []
    for key, param in plugin.parameters.items():
        if key.startswith("midi_ch_"):
            continue  # nice-plug's hidden MIDI CC parameters (VST3 has no other way to get CCs)
        steps = len(param.valid_values) if getattr(param, "valid_values", None) else 0
        count = steps if 1 < steps <= 512 else 201
        for i in range(count):
            raw = i / (count - 1)
            text = param.get_text_for_raw_value(raw)
            back = param.get_raw_value_for_text(text)
            again = param.get_text_for_raw_value(back)
            if again != text:
                broken.append(f"{key}: {raw:.3f} -> {text!r} -> {back:.4f} -> {again!r}")
    check(not broken, f"{name}: every parameter's text round-trips ({len(broken)} failures: {broken[:5]})")


def state_reproducible(plugin, name):
    saved = plugin.raw_state
    plugin.raw_state = saved
    again = plugin.raw_state
    check(saved == again, f"{name}: raw_state save -> load -> save is byte-identical ({len(saved)} bytes)")


for plugin, name in ((style, "Style"), (phrase, "Phrase"), (voice, "Voice")):
    text_round_trips(plugin, name)
    state_reproducible(plugin, name)

finish("vst3")
