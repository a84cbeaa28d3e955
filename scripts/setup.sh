#!/usr/bin/env bash
# Installs what LoopTune needs beyond the .NET SDK: the peer BLAS libraries it measures itself against
# (OpenBLAS, and BLIS and oneDNN when the distribution has them), and redis-server for clusters of silos.
# Safe to run again; skips what is present.
set -euo pipefail
have() { ldconfig -p 2>/dev/null | grep -q "$1"; }
missing=()
have libopenblas.so.0 || missing+=(libopenblas0)
have libblis.so.4 || missing+=(libblis4)
have libdnnl.so || missing+=(libdnnl2)
# compare-searches draws its PNG charts with ScottPlot/SkiaSharp, which needs a font on disk for the text
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
# a membership store for clusters of silos (compare-searches --cluster redis://...); the tests start their own server
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
# the tests check the TensorBoard event files with the public tfevents_check.py
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq || true
    for p in "${missing[@]}"; do
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null || echo "setup: could not install $p; LoopTune will report it as missing (and skip the tests that need it)" >&2
    done
  else
    echo "setup: no apt-get here; install OpenBLAS (libopenblas.so.0) yourself to compare against it" >&2
  fi
fi
command -v dotnet >/dev/null || { echo "setup: the .NET 10 SDK is needed (dotnet not found)" >&2; exit 1; }
dotnet restore --verbosity quiet
dotnet build -c Release --no-restore --verbosity quiet -nologo
