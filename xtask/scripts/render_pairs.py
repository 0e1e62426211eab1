#!/usr/bin/env python3
"""Renders paired monophonic training data for Continuo's timbre models.

Takes the soprano line of Bach chorales from music21's corpus (public-domain music; music21's
code is BSD-3, nothing is downloaded at run time), writes it as a one-track MIDI file per GM
program, and renders each with FluidSynth and the FluidR3_GM SoundFont at 16 kHz (the timbre
analysis rate) or, with `--sample-rate 48000`, at the rate full-band models synthesise at. The same notes are rendered for every instrument, so the files of one chorale are
sample-aligned pairs: ground truth for timbre-transfer evaluation.

Usage (`cargo xtask train-defaults` runs exactly this, into target/data/timbre):
    python3 -m venv target/venv-data && target/venv-data/bin/pip install 'music21==10.5.1'
    apt-get install -y --no-install-recommends fluidsynth fluid-soundfont-gm
    target/venv-data/bin/python xtask/scripts/render_pairs.py target/data/timbre --count 84 --heldout-every 6 --seed 2026

Layout written under OUT:
    midi/<instrument>/<split>/<stem>.mid
    <instrument>/<split>/<stem>.wav          (mono 16-bit at --sample-rate; split = train | heldout)
    pairs/<src>-to-<dst>/{source,target}/     (symlinks to the held-out renders)

Choices, all deterministic (seeded):
- each chorale is transposed by a random interval in [-5, +7] semitones (more pitch coverage);
- every note gets a random velocity in [45, 115] (the model must learn loudness-dependent
  timbre), identical for every instrument so the pairs stay aligned;
- reverb and chorus are off (-R 0 -C 0): the model learns the dry instrument;
- every file is loudness-normalised to the same level (gated RMS, like a streaming service's
  loudness normalisation): FluidR3's presets differ by 3-7 dB at the same velocity, an arbitrary
  sample gain that is not timbre; without it a transfer that keeps the player's dynamics (the
  loudness bar) would be scored as wrong by the spectral distance to the other instrument;
- the split is by chorale: every `--heldout-every`-th work goes to `heldout`.
Failures are reported per file and skipped; the exit code is non-zero only if nothing was
rendered.
"""

import argparse
import math
import os
import pathlib
import random
import subprocess
import sys
import time
import wave

# name: (GM program, octave the melody is played in, relative to the soprano line). Each
# instrument plays in its own range: the cello an octave down (its singing register, reaching
# E2 = 82 Hz on the lowest transposed notes), the others where the sopranos sing.
INSTRUMENTS = {
    "violin": (40, 0),
    "flute": (73, 0),
    "cello": (42, -1),
    "trumpet": (56, 0),
    "clarinet": (71, 0),
}
# Evaluation pairs (source, target): the same held-out melodies, the target played in its own
# octave (a flute → cello transfer is evaluated with Style's Octave at -1).
PAIRS = [
    ("flute", "violin"),
    ("violin", "flute"),
    ("flute", "cello"),
    ("violin", "trumpet"),
    ("flute", "clarinet"),
]
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
SAMPLE_RATE = 16000
# Level every render is normalised to by default: RMS over the 64 ms blocks within 40 dB of the
# loudest (an ordinary recording level; FluidSynth's default gain renders these melodies at
# about -42 dBFS).
DEFAULT_LEVEL_DBFS = -30.0
GATE_BLOCK = 1024
GATE_RANGE_DB = 40.0


def soprano_midi(score, program, transpose, velocities, target):
    """Writes the first part (soprano) of `score`, transposed by `transpose` semitones, as a
    one-instrument MIDI file."""
    from music21 import instrument, stream, tempo

    part = score.parts[0].flatten().notesAndRests.stream()
    out = stream.Part()
    inst = instrument.Instrument()
    inst.midiProgram = program
    inst.midiChannel = 0
    out.insert(0, inst)
    out.insert(0, tempo.MetronomeMark(number=90))
    index = 0
    for element in part:
        if element.isNote:
            note = element.transpose(transpose)
            note.volume.velocity = velocities[index % len(velocities)]
            index += 1
            out.insert(element.offset, note)
        elif element.isChord:  # a divisi in the soprano: keep the top note (monophonic)
            top = max(element.pitches, key=lambda p: p.ps)
            from music21 import note as m21note

            note = m21note.Note(top, quarterLength=element.quarterLength).transpose(transpose)
            note.volume.velocity = velocities[index % len(velocities)]
            index += 1
            out.insert(element.offset, note)
    if index == 0:
        raise ValueError("soprano part has no notes")
    out.write("midi", fp=str(target))


def gated_rms_dbfs(samples):
    """RMS level (dBFS) over the blocks within GATE_RANGE_DB of the loudest block."""
    blocks = [samples[i : i + GATE_BLOCK] for i in range(0, len(samples), GATE_BLOCK)]
    powers = [sum(x * x for x in block) / len(block) for block in blocks if block]
    loudest = max(powers, default=0.0)
    if loudest <= 0.0:
        raise ValueError("render is silent")
    gate = loudest * 10.0 ** (-GATE_RANGE_DB / 10.0)
    kept = [p for p in powers if p >= gate]
    return 10.0 * math.log10(sum(kept) / len(kept))


def read_mono(stereo_path, sample_rate=SAMPLE_RATE):
    """FluidSynth's stereo 16-bit output downmixed to mono (mean of the channels), in [-1, 1)."""
    import array

    with wave.open(str(stereo_path), "rb") as src:
        channels, width, rate, frames = (
            src.getnchannels(),
            src.getsampwidth(),
            src.getframerate(),
            src.getnframes(),
        )
        if width != 2 or rate != sample_rate:
            raise ValueError(f"unexpected render format: {width * 8}-bit {rate} Hz")
        data = array.array("h", src.readframes(frames))
    return [
        sum(data[i : i + channels]) / (channels * 32768.0) for i in range(0, len(data), channels)
    ]


def write_normalised(mono, mono_path, level_dbfs, sample_rate=SAMPLE_RATE):
    """Writes `mono` as a mono 16-bit WAV scaled to `level_dbfs` (gated RMS)."""
    import array

    gain = 10.0 ** ((level_dbfs - gated_rms_dbfs(mono)) / 20.0)
    peak = max(abs(x) for x in mono) * gain
    if peak >= 1.0:
        raise ValueError(f"normalising to {level_dbfs} dBFS would clip (peak {peak:.2f})")
    scaled = array.array("h", (round(x * gain * 32767.0) for x in mono))
    with wave.open(str(mono_path), "wb") as dst:
        dst.setnchannels(1)
        dst.setsampwidth(2)
        dst.setframerate(sample_rate)
        dst.writeframes(scaled.tobytes())


def synthesize(midi_path, stereo_path, sample_rate=SAMPLE_RATE, reverb=None, soundfont=SOUNDFONT):
    """Renders `midi_path` to a stereo 16-bit WAV with FluidSynth, chorus off. `reverb` is None
    (reverb off) or FluidSynth's reverb settings, e.g. {"room-size": 0.6} for
    `-o synth.reverb.room-size=0.6`."""
    if reverb is None:
        effects = ["-R", "0"]
    else:
        effects = ["-R", "1"]
        for name, value in reverb.items():
            effects += ["-o", f"synth.reverb.{name}={value}"]
    subprocess.run(
        ["fluidsynth", "-ni", "-q", *effects, "-C", "0", "-F", str(stereo_path), "-r",
         str(sample_rate), soundfont, str(midi_path)],
        check=True,
        capture_output=True,
    )


def render(midi_path, wav_path, level_dbfs, sample_rate=SAMPLE_RATE, soundfont=SOUNDFONT):
    tmp = wav_path.with_suffix(".stereo.wav")
    synthesize(midi_path, tmp, sample_rate, soundfont=soundfont)
    write_normalised(read_mono(tmp, sample_rate), wav_path, level_dbfs, sample_rate)
    tmp.unlink()


def shuffled_chorales(rng):
    """music21's Bach chorales as (stem, corpus path), in the order `rng` shuffles them."""
    from music21 import corpus

    paths = sorted({pathlib.Path(str(p)).stem: p for p in corpus.getComposer("bach")}.items())
    rng.shuffle(paths)
    return paths


def is_heldout(index, heldout_every):
    """Whether the `index`-th chorale rendered (counting from 0) goes to the held-out split."""
    return index % heldout_every == heldout_every - 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("--count", type=int, default=84, help="number of chorales to render")
    parser.add_argument("--heldout-every", type=int, default=6)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--level-dbfs", type=float, default=DEFAULT_LEVEL_DBFS,
                        help="gated RMS level every render is normalised to")
    parser.add_argument("--sample-rate", type=int, default=SAMPLE_RATE,
                        help="render rate, Hz (48000 for full-band timbre models)")
    parser.add_argument("--soundfont", default=SOUNDFONT,
                        help="GM SoundFont to render with (another sample set than the training "
                             "one, e.g. TimGM6mb, tests transfer to instruments never heard)")
    parser.add_argument("--instruments", default=",".join(INSTRUMENTS),
                        type=lambda text: [name.strip() for name in text.split(",")],
                        help="comma-separated instruments to render (default: all of "
                             + ", ".join(INSTRUMENTS) + "); the melodies, transpositions and "
                             "split are the same whichever are chosen")
    parser.add_argument("--heldout-only", action="store_true",
                        help="render only the held-out split (same selection and split as a full "
                             "run with the same seed)")
    args = parser.parse_args()

    from music21 import corpus  # late import so --help works without music21

    if not pathlib.Path(args.soundfont).exists():
        print(f"error: {args.soundfont} missing (apt-get install fluid-soundfont-gm, or "
              f"timgm6mb-soundfont for TimGM6mb)", file=sys.stderr)
        return 2
    unknown = [name for name in args.instruments if name not in INSTRUMENTS]
    if unknown:
        print(f"error: unknown instrument(s) {', '.join(unknown)} (known: "
              f"{', '.join(INSTRUMENTS)})", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    done, failed, start = 0, [], time.monotonic()
    for stem, path in shuffled_chorales(rng):
        if done >= args.count:
            break
        split = "heldout" if is_heldout(done, args.heldout_every) else "train"
        transpose = rng.randint(-5, 7)
        velocities = [rng.randint(45, 115) for _ in range(256)]
        try:
            score = corpus.parse(str(path))
            if args.heldout_only and split == "train":
                done += 1  # counted as a full run would, so the split stays the same
                continue
            for name in args.instruments:
                program, octave = INSTRUMENTS[name]
                midi_dir = args.out_dir / "midi" / name / split
                wav_dir = args.out_dir / name / split
                midi_dir.mkdir(parents=True, exist_ok=True)
                wav_dir.mkdir(parents=True, exist_ok=True)
                midi = midi_dir / f"{stem}.mid"
                soprano_midi(score, program, transpose + 12 * octave, velocities, midi)
                render(midi, wav_dir / f"{stem}.wav", args.level_dbfs, args.sample_rate,
                       args.soundfont)
            done += 1
        except Exception as error:  # noqa: BLE001 - report every failure and go on
            failed.append((stem, f"{type(error).__name__}: {error}"))
        if done and done % 20 == 0:
            print(f"{done}/{args.count} chorales, {time.monotonic() - start:.0f} s", flush=True)
    for src, dst in PAIRS:
        if not all((args.out_dir / name / "heldout").is_dir() for name in (src, dst)):
            continue
        pair = args.out_dir / "pairs" / f"{src}-to-{dst}"
        pair.mkdir(parents=True, exist_ok=True)
        for role, name in [("source", src), ("target", dst)]:
            link = pair / role
            if not link.exists():
                os.symlink(os.path.relpath(args.out_dir / name / "heldout", pair), link)
    print(f"rendered {done} chorales × {len(args.instruments)} instruments to {args.out_dir} in "
          f"{time.monotonic() - start:.0f} s ({len(failed)} failed)")
    for stem, reason in failed:
        print(f"  failed: {stem}: {reason}", file=sys.stderr)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
