#!/usr/bin/env python3
"""Converts a collection of music21's corpus into Standard MIDI files for continuo-train.

Collections (music21's code is BSD-3; nothing is downloaded at run time, the corpus ships
inside the music21 package):
- `chorales`: the Bach chorales (public-domain music), four voices: the data of
  `continuo-chorales`. One `<work>.mid` per chorale (BWV number from the corpus file name);
  when the corpus holds several encodings of one work, the first that converts wins.
- `folk`: the single-line fiddle and folk tunes of Ryan's Mammoth Collection (Boston, 1883, a
  public-domain book), as the ABC transcriptions contributed to music21's corpus: the data of
  `continuo-folk`. One `ryans-<n>.mid` per tune; grace notes are dropped and double stops keep
  their top note, so every file is one melody. A tune whose first 32 pitches repeat an earlier
  tune's is skipped, so that no tune is both trained on and held out. (The corpus's O'Neill's
  collection is not used: its files overlap each other, and parsing one of them does not end.)

Usage (`cargo xtask train-defaults` runs exactly this, into target/data/COLLECTION):
    python3 -m venv target/venv-data && target/venv-data/bin/pip install 'music21==10.5.1'
    target/venv-data/bin/python xtask/scripts/corpus_to_midi.py chorales target/data/chorales
    target/venv-data/bin/python xtask/scripts/corpus_to_midi.py folk target/data/folk

Failures are listed and counted, never fatal; the exit code is non-zero only if nothing at all
was written.
"""

import argparse
import pathlib
import sys
import time

FOLK_BOOKS = {"ryansMammoth": "ryans"}
FINGERPRINT_NOTES = 32


def chorale_sources():
    """Yields (output stem, path) for every chorale encoding. A work can come in two encodings
    ("bwv1.6" from "bwv1.6.krn" and "bwv1.6.mxl"): `convert` writes the first that converts."""
    from music21 import corpus

    for path in sorted(corpus.getComposer("bach"), key=str):
        path = pathlib.Path(str(path))
        yield path.stem, path


def folk_sources():
    """Yields (book prefix, path) for every ABC file of the folk books."""
    from music21 import corpus

    root = pathlib.Path(corpus.__file__).parent
    for folder, prefix in FOLK_BOOKS.items():
        for path in sorted((root / folder).glob("*.abc")):
            yield prefix, path


def melody_only(score):
    """Reduces a tune to one line: no grace notes, top note of any double stop."""
    from music21 import note

    for element in list(score.recurse().notes):
        if element.duration.isGrace:
            element.activeSite.remove(element)
        elif element.isChord:
            top = note.Note(element.pitches[-1], quarterLength=element.quarterLength)
            element.activeSite.replace(element, top)
    return score


def convert(collection, out_dir, limit):
    from music21 import converter

    written, failed, repeats = 0, [], 0
    tune_counts = {}
    fingerprints = set()
    sources = list(chorale_sources() if collection == "chorales" else folk_sources())
    start = time.monotonic()
    done = set()
    for index, (stem, path) in enumerate(sources):
        if limit and written >= limit:
            break
        if collection == "chorales" and stem in done:
            continue
        try:
            parsed = converter.parse(str(path))
            # An ABC book file holds many tunes (an Opus); a chorale is one Score.
            scores = list(parsed.scores) if hasattr(parsed, "scores") else [parsed]
            for score in scores:
                if collection == "folk":
                    score = melody_only(score)
                    pitches = tuple(n.pitch.midi for n in score.recurse().notes)
                    if pitches[:FINGERPRINT_NOTES] in fingerprints:
                        repeats += 1
                        continue
                    fingerprints.add(pitches[:FINGERPRINT_NOTES])
                    tune_counts[stem] = tune_counts.get(stem, 0) + 1
                    name = f"{stem}-{tune_counts[stem]:04}"
                else:
                    name = stem
                score.write("midi", fp=str(out_dir / f"{name}.mid"))
                written += 1
                done.add(name)
        except Exception as error:  # noqa: BLE001 - report every failure and go on
            failed.append((stem, path.name, f"{type(error).__name__}: {error}"))
        if (index + 1) % 50 == 0:
            elapsed = time.monotonic() - start
            print(f"{index + 1}/{len(sources)} files, {written} written, {elapsed:.0f} s", flush=True)
    # A chorale whose other encoding converted is not a failure.
    failed = [(name, reason) for stem, name, reason in failed if stem not in done]
    if repeats:
        print(f"skipped {repeats} tunes that repeat an earlier one")
    return written, failed, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("collection", choices=["chorales", "folk"])
    parser.add_argument("out_dir", type=pathlib.Path, help="folder for the .mid files")
    parser.add_argument("--limit", type=int, default=0, help="write at most N files (0 = all)")
    args = parser.parse_args()

    args.out_dir.mkdir(parents=True, exist_ok=True)
    written, failed, elapsed = convert(args.collection, args.out_dir, args.limit)
    print(f"wrote {written} MIDI files to {args.out_dir} in {elapsed:.0f} s ({len(failed)} failed)")
    for name, reason in failed:
        print(f"  failed: {name}: {reason}", file=sys.stderr)
    return 0 if written > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
