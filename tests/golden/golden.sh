#!/usr/bin/env bash
# Golden outputs (dumps of 5 HVSC tunes, generate for fixed seeds, renders, exports, a loop, a score):
# run from the repo root, before and after a change, then compare:
#   bash tests/golden/golden.sh /tmp/before; (change); bash tests/golden/golden.sh /tmp/after
#   .venv/bin/python tests/golden/compare.py /tmp/before /tmp/after [/tmp/before2]
# Outputs never go into the repository (they hold dumps of HVSC tunes).
set -euo pipefail
out=$1; mkdir -p "$out"
S=../shared/hvsc/C64Music
B=.venv/bin
export PYTHONHASHSEED=0
i=0
for t in MUSICIANS/0-9/20CC/Hip_House.sid MUSICIANS/D/DRAX/Level_42.sid MUSICIANS/G/Gillgrass_Dan/Name_Is.sid \
         MUSICIANS/L/Link/Abnormal.sid MUSICIANS/V/Voois_Vincent/Edge.sid; do
  f=$S/$t
  i=$((i+1)); echo "dump $i: $f"
  $B/sidlive dump "$f" --seconds 20 -o "$out/dump$i.regs"
  $B/sidlive dump "$f" --seconds 5 -o "$out/dump$i.txt"
done
for s in 0 1 7391738265; do
  $B/sidlive generate --frames 200 --seed $s --temp 0.9 --top-k 40 --top-p 0.95 -o "$out/gen_free_$s.regs"
  $B/sidlive generate --frames 200 --seed $s --prompt presets/loops/dojo.regs -o "$out/gen_prompt_$s.regs"
done
$B/sidlive generate --frames 100 --seed 5 --prompt "$out/dump1.regs" --with-prompt -o "$out/gen_sid.txt"
$B/sidlive render presets/loops/consultant.regs --seconds 6 -o "$out/render_loop.wav"
$B/sidlive render "$out/dump2.regs" --chip 8580 --rate 44100 --mute 2 -o "$out/render_dump.wav"
$B/sidlive render "$out/gen_free_0.regs" -o "$out/render_gen.wav"
$B/sidlive export "$out/gen_free_0.regs" "$out/dump3.regs" --title golden --author sidlive --released 2026 -o "$out/export.sid"
$B/sidlive export "$out/gen_prompt_1.regs" --loop -o "$out/export_loop.sid"
$B/sidlive render "$out/export.sid" --seconds 4 -o "$out/render_export.wav"
$B/sidlive score presets/models/default.sidm "$out/dump1.regs" "$out/dump4.regs" --json > "$out/score.json"
$B/sidlive loop "$out/dump5.regs" --start 0:02 --seconds 4 --name golden -o "$out/loop.regs"
(cd "$out" && sha256sum * | grep -v SHA256SUMS > SHA256SUMS)
echo "golden outputs in $out"
