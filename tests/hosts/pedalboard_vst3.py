"""VST3 check in a real host (pedalboard, PyPI): both plugins load, Style's parameters are
listed by name, and audio through Style comes out aligned, as the reported latency says.

Usage: python pedalboard_vst3.py path/to/Continuo.vst3   (run by `cargo xtask test`)
"""
import sys

import numpy as np
import pedalboard

bundle = sys.argv[1]
failures = []
passed = 0


def check(condition, message):
    global passed
    print(("ok   " if condition else "FAIL ") + message)
    if condition:
        passed += 1
    else:
        failures.append(message)


names = pedalboard.VST3Plugin.get_plugin_names_for_file(bundle)
check(set(names) >= {"Continuo Style", "Continuo Phrase"}, f"bundle lists both plugins: {names}")

style = pedalboard.load_plugin(bundle, plugin_name="Continuo Style")
check(set(style.parameters) >= {"mix", "output_gain_db", "bypass"}, f"Style parameters: {sorted(style.parameters)}")
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

style.mix = 100.0
style.output_gain_db = -6.0
style.reset()
output = style(stereo, sample_rate)
check(bool(np.all(np.isfinite(output))), "Mix 100%: output finite")
lag, error = aligned_error(output, gain=10 ** (-6 / 20))
# The STFT resynthesis is exact; if pedalboard runs faster than real time the engine may fall
# back to dry for a while, which only differs by the equal-power crossfade gain (≤ 1.42×).
check(error < 0.3, f"Mix 100%, −6 dB: resynthesis aligned (lag {lag}), max error {error:.2e}")

phrase = pedalboard.load_plugin(bundle, plugin_name="Continuo Phrase")
check({"thru", "history_bars"} <= set(phrase.parameters), f"Phrase parameters: {sorted(phrase.parameters)}")

print(f"vst3: {passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
