#!/usr/bin/env bash
# Cost of evaluation during training and checkpoints at their default intervals (issue 12).
#
#   bench/train/extras.sh [--relay PATH] [--seeds "1 2 3 4 5"] [--envs "CartPole-v1 Acrobot-v1"]
#
# For each env and seed: one run with the defaults (--eval-every 20 --eval-episodes 10
# --save-every 50) and one with both off, sequentially. Evaluation reads the policy without
# changing it, so both runs train identically (same steps and updates); the table shows the time
# the run itself reports for evaluations and checkpoints, its share of the training wall time,
# and the wall times of both runs (noisy on a shared machine).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
relay=$root/build/src/cli/relay
seeds="1 2 3 4 5"
envs="CartPole-v1"
while [ $# -gt 0 ]; do
    case "$1" in
    --relay) relay=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --envs) envs=$2; shift 2 ;;
    *) echo "extras.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
work=$(mktemp -d /tmp/relay-extrasbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "# relay: $relay (commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null))"
echo "# machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-13s %4s %8s %7s %6s %7s %7s %7s %9s %9s\n' env seed steps updates evals eval_s ckpts ckpt_s share_% wall_off_s
for env in $envs; do
    for seed in $seeds; do
        "$relay" train --env "$env" --seed "$seed" --out "$work/on-$env-$seed" >"$work/on.out" 2>"$work/on.err"
        "$relay" train --env "$env" --seed "$seed" --eval-every 0 --save-every 0 --quiet \
            --out "$work/off-$env-$seed" >"$work/off.out" 2>/dev/null
        line=$(grep -E ' after [0-9]+ steps' "$work/on.out")
        steps=$(sed -E 's/.* after ([0-9]+) steps, ([0-9]+) updates, ([0-9.]+) s .*/\1/' <<<"$line")
        ups=$(sed -E 's/.* after ([0-9]+) steps, ([0-9]+) updates, ([0-9.]+) s .*/\2/' <<<"$line")
        wall=$(sed -E 's/.* after ([0-9]+) steps, ([0-9]+) updates, ([0-9.]+) s .*/\3/' <<<"$line")
        woff=$(sed -E 's/.* after ([0-9]+) steps, ([0-9]+) updates, ([0-9.]+) s .*/\3/' <<<"$(grep -E ' after ' "$work/off.out")")
        ex=$(grep -E '^relay train: [0-9]+ evaluations' "$work/on.err")
        ne=$(sed -E 's/^relay train: ([0-9]+) evaluations \(([0-9.]+) s.*, ([0-9]+) checkpoints \(([0-9.]+) s\)/\1 \2 \3 \4/' <<<"$ex")
        read -r n_eval eval_s n_ck ck_s <<<"$ne"
        share=$(awk -v a="$eval_s" -v b="$ck_s" -v w="$wall" 'BEGIN { printf "%.2f", 100 * (a + b) / w }')
        printf '%-13s %4s %8s %7s %6s %7s %7s %7s %9s %9s\n' "$env" "$seed" "$steps" "$ups" "$n_eval" \
            "$eval_s" "$n_ck" "$ck_s" "$share" "$woff"
        echo "$share $wall $woff" >>"$work/shares"
    done
done
sort -n "$work/shares" | awk '{ s[NR] = $1 } END {
    m = NR % 2 ? s[(NR + 1) / 2] : (s[NR / 2] + s[NR / 2 + 1]) / 2
    printf "# median share of training wall time spent on evaluation + checkpoints: %.2f%% (max %.2f%%, %d runs)\n", m, s[NR], NR
}'
