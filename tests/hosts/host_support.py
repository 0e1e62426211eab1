"""What the host checks share: a pass/fail tally and a tiny standard MIDI file writer (their
venv has no MIDI package)."""
import sys

_failures = []
_passed = 0


def check(condition, message):
    """Prints `ok` or `FAIL` with the message and counts it."""
    global _passed
    print(("ok   " if condition else "FAIL ") + message)
    if condition:
        _passed += 1
    else:
        _failures.append(message)


def finish(name):
    """Prints the tally and exits non-zero if any check failed."""
    print(f"{name}: {_passed} passed, {len(_failures)} failed")
    sys.exit(1 if _failures else 0)


def write_midi(path, notes):
    """A type-0 MIDI file of (key, velocity, start s, end s) notes: 120 BPM, 480 ticks per beat
    (so 960 ticks per second)."""
    events = []
    for key, velocity, start, end in notes:
        events.append((round(start * 960), bytes([0x90, key, velocity])))
        events.append((round(end * 960), bytes([0x80, key, 0])))
    # At equal ticks, note-offs first: a repeated key is released before it is struck again.
    events.sort(key=lambda e: (e[0], e[1][0] == 0x90))

    def vlq(n):
        out = [n & 0x7F]
        while n > 0x7F:
            n >>= 7
            out.insert(0, (n & 0x7F) | 0x80)
        return bytes(out)

    track, now = bytearray(vlq(0) + b"\xff\x51\x03" + (500_000).to_bytes(3, "big")), 0
    for tick, data in events:
        track += vlq(tick - now) + data
        now = tick
    track += vlq(0) + b"\xff\x2f\x00"
    with open(path, "wb") as f:
        f.write(b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
                + (480).to_bytes(2, "big"))
        f.write(b"MTrk" + len(track).to_bytes(4, "big") + track)
