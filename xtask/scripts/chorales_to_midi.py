#!/usr/bin/env python3
"""Converts the Bach chorales shipped with music21's corpus into Standard MIDI files.

The default training data of `continuo-train continuation`. music21's code is BSD-3; the
chorale encodings in its corpus are public-domain music. Nothing is downloaded at run time:
the corpus ships inside the music21 package.

Usage (`cargo xtask train-defaults` runs exactly this, into target/data/chorales):
    python3 -m venv target/venv-data && target/venv-data/bin/pip install 'music21==10.5.1'
    target/venv-data/bin/python xtask/scripts/chorales_to_midi.py target/data/chorales

Writes one `<work>.mid` per chorale (BWV number from the corpus file name). When the corpus
holds several encodings of one work (e.g. `.mxl` and `.krn`), the first that converts wins.
Failures are listed and counted, never fatal; the exit code is non-zero only if nothing at all
was written.
"""

import argparse
import pathlib
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=pathlib.Path, help="folder for the .mid files")
    parser.add_argument("--limit", type=int, default=0, help="convert at most N works (0 = all)")
    args = parser.parse_args()

    from music21 import corpus  # imported late so --help works without music21

    args.out_dir.mkdir(parents=True, exist_ok=True)
    paths = sorted(corpus.getComposer("bach"), key=str)
    written, failed, skipped = 0, [], 0
    seen = set()
    start = time.monotonic()
    for index, path in enumerate(paths):
        path = pathlib.Path(str(path))
        stem = path.stem  # "bwv1.6" from "bwv1.6.mxl"
        if stem in seen:
            skipped += 1
            continue
        if args.limit and written >= args.limit:
            break
        try:
            score = corpus.parse(str(path))
            target = args.out_dir / f"{stem}.mid"
            score.write("midi", fp=str(target))
            seen.add(stem)
            written += 1
        except Exception as error:  # noqa: BLE001 - report every failure and go on
            failed.append((path.name, f"{type(error).__name__}: {error}"))
        if (index + 1) % 50 == 0:
            elapsed = time.monotonic() - start
            print(f"{index + 1}/{len(paths)} files, {written} written, {elapsed:.0f} s", flush=True)

    elapsed = time.monotonic() - start
    print(f"wrote {written} MIDI files to {args.out_dir} in {elapsed:.0f} s "
          f"({skipped} duplicate encodings skipped, {len(failed)} failed)")
    for name, reason in failed:
        print(f"  failed: {name}: {reason}", file=sys.stderr)
    return 0 if written > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
