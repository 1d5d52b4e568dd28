#!/usr/bin/env bash
# test_privacy_cli.sh: `shoal privacy epsilon|noise` as a user runs it. Values are checked
# against published ones (Abadi et al. 2016's setting must beat the moments accountant's 1.26;
# Opacus tests/accountants_test.py get_noise_multiplier: sigma 1.416 for eps 8 over 2250
# steps at q 0.04), the two commands must invert each other, and every kind of bad input
# must give a message naming the option and exit 2.
set -euo pipefail
SHOAL="${SHOAL_BIN:?}"
. "${SHOAL_SOURCE_DIR:?}/tests/lib.sh"
val() { sed -n "s/^$1: //p" "$T/out"; }
# awk float comparison: cmp A OP B
cmp() { awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; }

expect "help" 0 "$SHOAL" privacy --help
grep -q "shoal privacy epsilon" "$T/out" && ok "help shows epsilon" || bad "help shows epsilon"
expect "listed in shoal --help" 0 "$SHOAL" --help
grep -q "privacy" "$T/out" && ok "privacy listed" || bad "privacy listed"

expect "abadi16 epsilon" 0 "$SHOAL" privacy epsilon --noise 4 --sample-rate 0.01 --steps 10000 --delta 1e-5
e=$(val epsilon); o=$(val optimal_order)
cmp "$e" "<=" 1.26 && cmp "$e" ">" 0.9 && ok "abadi16 eps $e <= 1.26" || bad "abadi16 eps $e"
[ "$o" = "17" ] && ok "optimal order 17" || bad "optimal order $o"

expect "opacus noise" 0 "$SHOAL" privacy noise --epsilon 8 --sample-rate 0.04 --steps 2250 --delta 1e-5
s=$(val noise_multiplier)
cmp "$s" "<=" 1.41605 && cmp "$s" ">" 1.414 && ok "sigma $s ~ 1.416 (Opacus)" || bad "sigma $s"
expect "round trip" 0 "$SHOAL" privacy epsilon --noise "$s" --sample-rate 0.04 --steps 2250 --delta 1e-5
e=$(val epsilon)
cmp "$e" "<=" 8 && cmp "$e" ">" 7.999 && ok "eps(sigma) = $e <= 8" || bad "eps(sigma) = $e"

# --epochs E = ceil(E / q) steps (TF-Privacy): 1.2 epochs at q 0.01 is 120 steps
expect "epochs" 0 "$SHOAL" privacy epsilon --noise 0.7 --sample-rate 0.01 --epochs 1.2 --delta 1e-5
[ "$(val steps)" = "120" ] && ok "epochs -> 120 steps" || bad "epochs -> $(val steps) steps"
# TF-Privacy compute_dp_sgd_privacy_test.py (RDP example privacy): 3.2392676
e=$(val epsilon)
cmp "$e" ">" 3.23926 && cmp "$e" "<" 3.23928 && ok "tf-privacy 3.2392676 ($e)" || bad "tf-privacy $e"

# bad input: named, exit 2
expect "no subcommand" 2 "$SHOAL" privacy
expect "unknown subcommand" 2 "$SHOAL" privacy delta --noise 1
grep -q "unknown subcommand 'delta'" "$T/err" && ok "unknown named" || bad "unknown named"
expect "missing noise" 2 "$SHOAL" privacy epsilon --sample-rate 0.01 --steps 10 --delta 1e-5
grep -q -- "--noise" "$T/err" && ok "missing noise named" || bad "missing noise named"
expect "non-number" 2 "$SHOAL" privacy epsilon --noise 1.0x --sample-rate 0.01 --steps 10 --delta 1e-5
expect "q out of range" 2 "$SHOAL" privacy epsilon --noise 1 --sample-rate 1.5 --steps 10 --delta 1e-5
grep -q -- "--sample-rate '1.5'" "$T/err" && ok "q named" || bad "q named"
expect "q zero" 2 "$SHOAL" privacy epsilon --noise 1 --sample-rate 0 --steps 10 --delta 1e-5
expect "delta 1" 2 "$SHOAL" privacy epsilon --noise 1 --sample-rate 0.1 --steps 10 --delta 1
expect "delta nan" 2 "$SHOAL" privacy epsilon --noise 1 --sample-rate 0.1 --steps 10 --delta nan
expect "negative noise" 2 "$SHOAL" privacy epsilon --noise -1 --sample-rate 0.1 --steps 10 --delta 1e-5
expect "steps zero" 2 "$SHOAL" privacy epsilon --noise 1 --sample-rate 0.1 --steps 0 --delta 1e-5
expect "steps fractional" 2 "$SHOAL" privacy epsilon --noise 1 --sample-rate 0.1 --steps 2.5 --delta 1e-5
expect "steps and epochs" 2 "$SHOAL" privacy epsilon --noise 1 --sample-rate 0.1 --steps 2 --epochs 1 --delta 1e-5
expect "twice" 2 "$SHOAL" privacy epsilon --noise 1 --noise 2 --sample-rate 0.1 --steps 2 --delta 1e-5
expect "missing value" 2 "$SHOAL" privacy epsilon --noise
expect "noise on epsilon cmd" 2 "$SHOAL" privacy noise --noise 1 --sample-rate 0.1 --steps 2 --delta 1e-5
expect "epsilon negative" 2 "$SHOAL" privacy noise --epsilon -3 --sample-rate 0.1 --steps 2 --delta 1e-5
expect "unreachable epsilon" 1 "$SHOAL" privacy noise --epsilon 1e-9 --sample-rate 0.5 --steps 100000 --delta 1e-9
grep -q "no noise multiplier" "$T/err" && ok "unreachable explained" || bad "unreachable explained"

finish
