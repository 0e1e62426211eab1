#!/usr/bin/env bash
# Downloads the ONNX Runtime shared library that ort 2.0.0-rc.15 (API 24) expects, from the
# official PyPI wheel, and extracts it with its licence files into DIR.
# Usage: ./fetch-ort.sh DIR      then: export ORT_DYLIB_PATH=DIR/libonnxruntime.so.1.31.1
set -euo pipefail
ORT_VERSION="${ORT_VERSION:-1.31.1}"
dest="${1:?usage: fetch-ort.sh DIR}"
mkdir -p "$dest"
lib="$dest/libonnxruntime.so.$ORT_VERSION"
if [ -f "$lib" ]; then
    echo "$lib"
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The wheel's Python tag does not matter for the C library; pin the platform so a machine
# with another Python still gets the manylinux x86_64 build.
python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 \
    "onnxruntime==$ORT_VERSION" -d "$tmp" >&2
wheel="$(ls "$tmp"/onnxruntime-"$ORT_VERSION"-*.whl)"
python3 - "$wheel" "$dest" "$ORT_VERSION" <<'PY'
import sys, zipfile, os
wheel, dest, ver = sys.argv[1:4]
wanted = {
    f"onnxruntime/capi/libonnxruntime.so.{ver}": f"libonnxruntime.so.{ver}",
    "onnxruntime/LICENSE": "LICENSE-onnxruntime",
    "onnxruntime/ThirdPartyNotices.txt": "ThirdPartyNotices-onnxruntime.txt",
}
with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    for src, dst in wanted.items():
        if src not in names:
            sys.exit(f"fetch-ort.sh: {src} not in {wheel}")
        out = os.path.join(dest, dst)
        with z.open(src) as f, open(out + ".part", "wb") as o:
            o.write(f.read())
        os.replace(out + ".part", out)
    os.chmod(os.path.join(dest, f"libonnxruntime.so.{ver}"), 0o755)
PY
echo "$lib"
