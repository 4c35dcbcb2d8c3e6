#!/usr/bin/env bash
# librelay.so must export the public API (relay_*) and nothing else of its own.
set -euo pipefail
lib="$1"
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}')
bad=$(printf '%s\n' "$syms" | grep -v -E '^(relay_|_init$|_fini$|_edata$|_end$|__bss_start$)' || true)
if [ -n "$bad" ]; then
  echo "FAIL: librelay.so exports non-public symbols:"; printf '%s\n' "$bad" | head -20; exit 1
fi
for want in relay_agent_new relay_agent_request_action relay_strerror relay_model_from_onnx relay_vecenv_step relay_sink_open; do
  grep -qx "$want" <<<"$syms" || { echo "FAIL: $want is not exported"; exit 1; }
done
echo "exports ok: $(printf '%s\n' "$syms" | wc -l) public symbols"
