#!/usr/bin/env python3
"""Scores Continuo's live audio-to-MIDI transcription (`continuo transcribe`) on rendered chorales.

Renders the soprano lines of the held-out Bach chorales (the 14 of render_pairs.py's split with
`cargo xtask train-defaults`' settings: shuffled with seed 2026, every 6th of the first 84) as
five instruments with FluidSynth, transcribes every render with Continuo's causal note tracker,
with the onset + median-pitch baseline and with the tracker placed as live (`--as-live`), and
scores the notes against the MIDI that was rendered with mir_eval. `--split dev` does the same on
14 training-split chorales instead (under target/eval/transcription-dev): tune the tracker there,
report the held-out figures.

Set up (Debian/Ubuntu; the venv is the one `cargo xtask train-defaults` makes, plus two packages):
    apt-get install -y --no-install-recommends fluidsynth fluid-soundfont-gm
    python3 -m venv target/venv-data
    target/venv-data/bin/pip install 'music21==10.5.1' 'mir_eval==0.8.2' 'pretty_midi==0.2.11.post0'
    cargo build --bin continuo
Run (from the repository root):
    target/venv-data/bin/python xtask/scripts/eval_transcription.py [--split heldout|dev] [--quick] [--jobs N] [--continuo PATH]

Material and conditions, all deterministic:
- instruments: flute (GM 73), violin (40), cello (42, two octaves down), trumpet (56), clarinet
  (71); per chorale and instrument a transposition in [-3, +3] semitones that keeps every note
  in the instrument's range and velocities in [45, 115], drawn from an rng seeded by the chorale
  and instrument names (so --quick renders the same files as a full run);
- 48 kHz (the host rate), mono 16-bit, each render normalised (gated RMS, as render_pairs.py) to
  -21, -32 and -44 dBFS (the loudest trumpet render peaks 20.1 dB above its gated RMS, so -20
  would clip it);
- reverb off (-R 0), or on (`room`): FluidSynth's reverb with room-size 0.6, damp 0.3, width 1
  and level 1, measured on these melodies as an RT60 of about 1.7 s with the reverberant part
  9-13 dB below the direct sound (a church or hall heard from a few metres). Chorus off.

Scores (mir_eval.transcription, onset tolerance 50 ms, pitch tolerance 50 cents): note F
onset-only (offset_ratio=None) and with offsets (offset_ratio=0.2, offset_min_tolerance=0.05).
Aggregates pool the notes of all files (matched / estimated, matched / reference), so a long
chorale weighs more than a short one; the per-file figures are in results.json. Live delay:
the `--as-live` notes matched to the reference onset-only with a 150 ms onset tolerance; median
and 90th percentile of (live note-on - true onset) over the reference notes at >= 100 Hz (the
share of those notes matched at all is printed beside it: a note heard later than 150 ms is not
in the delay figures).

Layout under target/eval/transcription (not committed; renders are kept and reused while their
MIDI and the render settings are unchanged, transcriptions are redone every run):
    midi/<instrument>/<chorale>.mid                          reference notes (what was rendered)
    wav/<dry|room>/<level>dBFS/<instrument>/<chorale>.wav    renders
    est/<tracker|baseline|live>/<dry|room>/<level>dBFS/<instrument>/<chorale>.mid
    results.json                                             every per-file figure
A full run is 14 chorales x 5 instruments x 2 rooms x 3 levels = 420 renders and 1260
transcriptions: on 2 cores about 6 minutes of rendering the first time, then 6 minutes of
transcription with the debug binary. --quick is 3 chorales at -32 dBFS (30 renders, 90
transcriptions; under a minute, 20 s once rendered).
Exits non-zero, naming the file, if a render or a transcription fails.
"""

import argparse
import concurrent.futures
import json
import pathlib
import random
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np
import pretty_midi
from mir_eval import transcription
from render_pairs import (
    SOUNDFONT,
    is_heldout,
    read_mono,
    shuffled_chorales,
    soprano_midi,
    synthesize,
    write_normalised,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Where a split's files go (set by --split; `transcription-dev` for the dev set).
OUT = ROOT / "target" / "eval" / "transcription"
# GM program, octave shift and playable range (MIDI notes, sounding pitch; the trumpet's reaches
# D6 because two held-out soprano lines do).
INSTRUMENTS = {
    "flute": (73, 0, (60, 96)),
    "violin": (40, 0, (55, 100)),
    "cello": (42, -24, (36, 76)),
    "trumpet": (56, 0, (52, 86)),
    "clarinet": (71, 0, (50, 91)),
}
TRANSPOSITIONS = range(-3, 4)
VELOCITIES = (45, 115)
SAMPLE_RATE = 48000
LEVELS_DBFS = (-21, -32, -44)
QUICK_LEVEL_DBFS = -32
QUICK_CHORALES = 3
REVERBS = {"dry": None, "room": {"room-size": 0.6, "damp": 0.3, "width": 1.0, "level": 1.0}}
# render_pairs.py's split as `cargo xtask train-defaults` runs it (RENDER_SETTINGS there).
SPLIT_SEED, SPLIT_COUNT, SPLIT_HELDOUT_EVERY = 2026, 84, 6
# The dev set: every 5th training chorale (14 of 70).
DEV_EVERY = 5
# Transcriptions per render: name -> `continuo transcribe` arguments.
RUNS = {
    "tracker": ["--method", "tracker"],
    "baseline": ["--method", "onset-median"],
    "live": ["--method", "tracker", "--as-live"],
}
ONSET_TOLERANCE_S = 0.05
PITCH_TOLERANCE_CENTS = 50.0
OFFSET_RATIO, OFFSET_MIN_TOLERANCE_S = 0.2, 0.05
LIVE_ONSET_TOLERANCE_S = 0.15
LIVE_MIN_HZ = 100.0


def split_chorales(split, limit=None):
    """The chorales of `split` (the first `limit` of them) as (stem, score), in the split's order.

    "heldout": the held-out chorales, never trained on: what the figures report. "dev": every
    DEV_EVERY-th chorale of the training split, for tuning the tracker (so the held-out figures
    are not tuned on). render_pairs.py counts a chorale once it parsed, had a soprano and
    rendered; a failed render would shift its split, but none fails with its settings, so
    parsing and the soprano decide here (this gives the 14 held-out files of
    models/continuo-*.report.md)."""
    from music21 import corpus

    chosen, done, trained = [], 0, 0
    for stem, path in shuffled_chorales(random.Random(SPLIT_SEED)):
        if done >= SPLIT_COUNT or len(chosen) == limit:
            break
        try:
            score = corpus.parse(str(path))
            soprano = score.parts[0].flatten().notesAndRests
        except Exception:  # noqa: BLE001 - render_pairs.py skips these without counting them
            continue
        if not any(element.isNote or element.isChord for element in soprano):
            continue
        if is_heldout(done, SPLIT_HELDOUT_EVERY):
            if split == "heldout":
                chosen.append((stem, score))
        else:
            if split == "dev" and trained % DEV_EVERY == 0:
                chosen.append((stem, score))
            trained += 1
        done += 1
    return chosen


def write_reference(score, stem, name):
    """Writes the soprano of `score` for instrument `name` to midi/<name>/<stem>.mid.

    Returns the transposition; when the file changed, its renders are deleted (stale)."""
    program, shift, (low, high) = INSTRUMENTS[name]
    rng = random.Random(f"{stem}/{name}")
    pitches = [p.midi + shift for p in score.parts[0].flatten().pitches]
    fitting = [t for t in TRANSPOSITIONS if low <= min(pitches) + t and max(pitches) + t <= high]
    if not fitting:
        raise ValueError(f"{stem} does not fit the {name} range even transposed by ±3")
    transpose = shift + rng.choice(fitting)
    velocities = [rng.randint(*VELOCITIES) for _ in range(256)]
    target = OUT / "midi" / name / f"{stem}.mid"
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = target.with_suffix(".new.mid")
    soprano_midi(score, program, transpose, velocities, fresh)
    if target.exists() and target.read_bytes() == fresh.read_bytes():
        fresh.unlink()
    else:
        fresh.replace(target)
        for stale in (OUT / "wav").glob(f"*/*/{name}/{stem}.wav"):
            stale.unlink()
    return transpose


def wav_path(reverb, level, name, stem):
    return OUT / "wav" / reverb / f"{level}dBFS" / name / f"{stem}.wav"


def render(midi, reverb, targets, stereo):
    """Renders `midi` once with FluidSynth (through the temporary file `stereo`) and writes it
    normalised to each (level, path) in `targets` (paths given: this runs in a worker process)."""
    stereo.parent.mkdir(parents=True, exist_ok=True)
    synthesize(midi, stereo, SAMPLE_RATE, REVERBS[reverb])
    mono = read_mono(stereo, SAMPLE_RATE)
    stereo.unlink()
    for level, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial.wav")  # an interrupted run leaves no short render
        write_normalised(mono, partial, level, SAMPLE_RATE)
        partial.replace(target)


def notes(midi_path):
    """(intervals in seconds, pitches in Hz) of every note in a MIDI file, by onset."""
    found = sorted(
        (note.start, note.end, note.pitch)
        for instrument in pretty_midi.PrettyMIDI(str(midi_path)).instruments
        for note in instrument.notes
    )
    intervals = np.array([(start, end) for start, end, _ in found]).reshape(-1, 2)
    pitches = np.array([440.0 * 2.0 ** ((pitch - 69) / 12.0) for _, _, pitch in found])
    return intervals, pitches


def note_scores(ref, est, offset_ratio):
    """mir_eval's note precision, recall, F and overlap, plus the matched-note count (pooled)."""
    tolerances = dict(onset_tolerance=ONSET_TOLERANCE_S, pitch_tolerance=PITCH_TOLERANCE_CENTS,
                      offset_ratio=offset_ratio, offset_min_tolerance=OFFSET_MIN_TOLERANCE_S)
    if len(est[0]) == 0:  # mir_eval warns and scores 0; the count needs no matching
        return {"precision": 0.0, "recall": 0.0, "f": 0.0, "overlap": 0.0, "matched": 0}
    precision, recall, f, overlap = transcription.precision_recall_f1_overlap(
        *ref, *est, **tolerances
    )
    matched = len(transcription.match_notes(*ref, *est, **tolerances))
    return {"precision": precision, "recall": recall, "f": f, "overlap": overlap,
            "matched": matched}


def live_delays(ref, est):
    """Live note-on minus true onset (ms) of the reference notes >= LIVE_MIN_HZ, matched
    onset-only within LIVE_ONSET_TOLERANCE_S; and how many such reference notes there are."""
    eligible = int((ref[1] >= LIVE_MIN_HZ).sum())
    if len(est[0]) == 0:
        return [], eligible
    matching = transcription.match_notes(
        *ref, *est, onset_tolerance=LIVE_ONSET_TOLERANCE_S,
        pitch_tolerance=PITCH_TOLERANCE_CENTS, offset_ratio=None,
    )
    delays = [round(1000.0 * (est[0][j, 0] - ref[0][i, 0]), 1) for i, j in matching
              if ref[1][i] >= LIVE_MIN_HZ]
    return delays, eligible


def percentile(values, q):
    return float(np.percentile(values, q)) if values else None


def pooled(files):
    """Pooled figures over `files` (see the module docstring), as table cells."""
    cells = {}
    for run in ("tracker", "baseline"):
        for kind in ("onset", "offset"):
            matched = sum(f[run][kind]["matched"] for f in files)
            estimated = sum(f[run]["notes"] for f in files)
            reference = sum(f["reference_notes"] for f in files)
            cells[f"{run} {kind} F"] = 2 * matched / (estimated + reference)
            if run == "tracker" and kind == "onset":
                cells["tracker P"] = matched / estimated if estimated else 0.0
                cells["tracker R"] = matched / reference
    delays = [d for f in files for d in f["live"]["delays_ms"]]
    eligible = sum(f["live"]["reference_notes"] for f in files)
    cells["live matched %"] = 100 * len(delays) / eligible if eligible else None
    cells["live median"] = percentile(delays, 50)
    cells["live p90"] = percentile(delays, 90)
    return cells


def cell(value, spec):
    return "n/a" if value is None else format(value, spec)


def table(label, groups):
    """A Markdown table of the pooled figures of each (name, files) in `groups`."""
    lines = [
        f"| {label} | files | ref notes | tracker onset F | tracker F (offsets) | "
        "tracker P / R (onset) | baseline onset F | baseline F (offsets) | "
        "live delay median / p90 (ms) | live matched % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, files in groups:
        c = pooled(files)
        lines.append(
            f"| {name} | {len(files)} | {sum(f['reference_notes'] for f in files)} | "
            f"{c['tracker onset F']:.3f} | {c['tracker offset F']:.3f} | "
            f"{c['tracker P']:.3f} / {c['tracker R']:.3f} | "
            f"{c['baseline onset F']:.3f} | {c['baseline offset F']:.3f} | "
            f"{cell(c['live median'], '.0f')} / {cell(c['live p90'], '.0f')} | "
            f"{cell(c['live matched %'], '.1f')} |"
        )
    return "\n".join(lines)


def transcribe(continuo, wav, out, args):
    """Runs `continuo transcribe`; returns None or the failure's message."""
    out.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([str(continuo), "transcribe", str(wav), "-o", str(out), *args],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return f"exit {result.returncode}: {(result.stderr or result.stdout).strip()}"
    return None


def est_path(run, reverb, level, name, stem):
    return OUT / "est" / run / reverb / f"{level}dBFS" / name / f"{stem}.mid"


def render_all(chorales, levels, jobs):
    """Writes the reference MIDI and renders what is missing (renders are reused while the
    render settings and their MIDI are unchanged).

    Returns the (stem, instrument, transposition, reverb, level) of every render, how many
    (chorale, instrument, reverb) sets were rendered, and None or the failure."""
    settings = json.dumps({"sample_rate": SAMPLE_RATE, "reverbs": REVERBS,
                           "soundfont": SOUNDFONT}, sort_keys=True)
    stamp = OUT / "wav" / "settings.json"
    if stamp.exists() and stamp.read_text() != settings:
        shutil.rmtree(OUT / "wav")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(settings)
    items, renders = [], []
    for stem, score in chorales:
        for name in INSTRUMENTS:
            transpose = write_reference(score, stem, name)
            for reverb in REVERBS:
                missing = [level for level in levels
                           if not wav_path(reverb, level, name, stem).exists()]
                if missing:
                    targets = [(level, wav_path(reverb, level, name, stem)) for level in missing]
                    renders.append((OUT / "midi" / name / f"{stem}.mid", reverb, targets,
                                    OUT / "tmp" / f"{reverb}-{name}-{stem}.wav"))
                items += [(stem, name, transpose, reverb, level) for level in levels]
    print(f"{len(chorales)} chorales; rendering {len(renders)} of "
          f"{len(chorales) * len(INSTRUMENTS) * len(REVERBS)} (chorale, instrument, reverb) "
          "sets", file=sys.stderr, flush=True)
    with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
        for job, future in [(job, pool.submit(render, *job)) for job in renders]:
            try:
                future.result()
            except Exception as error:  # noqa: BLE001 - name the render, then stop
                pool.shutdown(cancel_futures=True)
                return items, len(renders), (f"rendering {job[0].relative_to(ROOT)} ({job[1]}) "
                                             f"failed: {type(error).__name__}: {error}")
    return items, len(renders), None


def transcribe_all(items, continuo, jobs):
    """Runs every transcription of every render, `jobs` at a time; None or the first failure."""
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        runs = {}
        for stem, name, _, reverb, level in items:
            wav = wav_path(reverb, level, name, stem)
            for run, run_args in RUNS.items():
                out = est_path(run, reverb, level, name, stem)
                runs[pool.submit(transcribe, continuo, wav, out, run_args)] = (wav, run)
        for future in concurrent.futures.as_completed(runs):
            failure = future.result()
            if failure is not None:
                wav, run = runs[future]
                pool.shutdown(cancel_futures=True)
                return (f"continuo transcribe ({run}: {' '.join(RUNS[run])}) failed on "
                        f"{wav.relative_to(ROOT)}: {failure}")
    return None


def score(items):
    """The per-file figures of every render; and None or the failure."""
    files = []
    for stem, name, transpose, reverb, level in items:
        ref = notes(OUT / "midi" / name / f"{stem}.mid")
        entry = {"chorale": stem, "instrument": name, "transpose": transpose,
                 "reverb": reverb, "level_dbfs": level,
                 "wav": str(wav_path(reverb, level, name, stem).relative_to(ROOT)),
                 "reference_notes": len(ref[0])}
        for run in RUNS:
            out = est_path(run, reverb, level, name, stem)
            est = notes(out)
            if run == "live":  # a live note-on may come at its note's end: no duration needed
                delays, eligible = live_delays(ref, est)
                entry[run] = {"notes": len(est[0]), "reference_notes": eligible,
                              "delays_ms": delays}
            elif (est[0][:, 1] <= est[0][:, 0]).any():  # mir_eval would reject the file
                return files, f"{out.relative_to(ROOT)} has a note without duration"
            else:
                entry[run] = {"notes": len(est[0]), "onset": note_scores(ref, est, None),
                              "offset": note_scores(ref, est, OFFSET_RATIO)}
        files.append(entry)
    return files, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--continuo", type=pathlib.Path, default=ROOT / "target/debug/continuo",
                        help="the continuo binary (default: target/debug/continuo)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_CHORALES} chorales at {QUICK_LEVEL_DBFS} dBFS only")
    parser.add_argument("--split", choices=("heldout", "dev"), default="heldout",
                        help="heldout (default; the reported figures) or dev (training-split "
                             "chorales, for tuning)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="renders and transcriptions run in parallel (default 2)")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    global OUT
    if args.split == "dev":
        OUT = OUT.with_name("transcription-dev")

    python = pathlib.Path(sys.executable)
    python = python.relative_to(ROOT) if python.is_relative_to(ROOT) else "python3"
    command = shlex.join([str(python), "xtask/scripts/eval_transcription.py", *sys.argv[1:]])
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    print(f"Reproduce (from the repository root, commit {commit}): `{command}`\n")

    if not pathlib.Path(SOUNDFONT).exists() or shutil.which("fluidsynth") is None:
        print("error: needs fluidsynth and fluid-soundfont-gm (apt-get install -y "
              "--no-install-recommends fluidsynth fluid-soundfont-gm)", file=sys.stderr)
        return 2
    if not args.continuo.exists() or subprocess.run(
        [str(args.continuo), "transcribe", "--help"], capture_output=True
    ).returncode != 0:
        print(f"error: {args.continuo} has no `transcribe` command (cargo build --bin continuo, "
              "or give --continuo PATH)", file=sys.stderr)
        return 2

    levels = (QUICK_LEVEL_DBFS,) if args.quick else LEVELS_DBFS
    chorales = split_chorales(args.split, QUICK_CHORALES if args.quick else None)
    start = time.monotonic()
    items, rendered, failure = render_all(chorales, levels, args.jobs)
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    render_seconds, start = time.monotonic() - start, time.monotonic()
    failure = transcribe_all(items, args.continuo, args.jobs)
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    transcribe_seconds = time.monotonic() - start
    files, failure = score(items)
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return 1

    by_instrument = [(name, [f for f in files if f["instrument"] == name]) for name in INSTRUMENTS]
    by_condition = [(f"{reverb}, {level} dBFS",
                     [f for f in files if f["reverb"] == reverb and f["level_dbfs"] == level])
                    for reverb in REVERBS for level in levels]
    print(f"{len(chorales)} {'held-out' if args.split == 'heldout' else 'dev (training-split)'} "
          f"chorales x {len(INSTRUMENTS)} instruments x "
          f"{len(REVERBS)} rooms x {len(levels)} levels = {len(files)} renders, 48 kHz. "
          "Figures pool the notes of all files; onset tolerance 50 ms, pitch 50 cents, offsets "
          "within 20 % of the note (at least 50 ms). Live delay: --as-live note-on minus true "
          f"onset, reference notes >= {LIVE_MIN_HZ:.0f} Hz matched within "
          f"{1000 * LIVE_ONSET_TOLERANCE_S:.0f} ms (\"live matched\": the share that were).\n")
    print(table("instrument", by_instrument + [("**all**", files)]))
    print()
    print(table("condition", by_condition))
    print(f"\nRendering {render_seconds:.0f} s ({rendered} sets), transcription "
          f"{transcribe_seconds:.0f} s ({len(items) * len(RUNS)} runs, {args.jobs} jobs); "
          f"per-file figures in {(OUT / 'results.json').relative_to(ROOT)}")
    (OUT / "results.json").write_text(json.dumps({
        "command": command,
        "commit": commit,
        "continuo": str(args.continuo),
        "aggregation": "pooled: matched notes summed over files, P = matched / estimated, "
                       "R = matched / reference, F = 2 matched / (estimated + reference)",
        "reverbs": REVERBS,
        "sample_rate": SAMPLE_RATE,
        "files": files,
        "by_instrument": {name: pooled(group) for name, group in by_instrument + [("all", files)]},
        "by_condition": {name: pooled(group) for name, group in by_condition},
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
