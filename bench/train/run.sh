#!/usr/bin/env bash
# Time-to-solve benchmark for `relay train` (and, with --torch, a PyTorch PPO side by side).
#
#   bench/train/run.sh [--relay PATH] [--seeds "1 2 3 4 5"] [--all-envs | --envs "A B"]
#                      [--torch] [--python PATH] [--csv FILE] [--keep]
#
# Runs `relay train --quiet --sink none` once per seed and environment (sequentially, never in
# parallel), parses steps and wall seconds from its result line, and prints one row per run and a
# summary per environment: solved count, median and worst wall time, median steps. With --torch,
# tools/torch_ppo.py (CartPole-v1 only) runs right after relay for each seed, so both see the same
# machine load, and the summary adds the speed ratio torch/relay of the median wall times.
#
# Every row also records the 1-minute load average (/proc/loadavg) just before the run and the
# process's CPU time (user + sys, from /usr/bin/time) because the machine is shared.
#
# Environment: TORCH_LD_LIBRARY_PATH is prepended to LD_LIBRARY_PATH for the torch runs only, e.g.
# the directory of an OpenBLAS libblas.so.3 (Debian's torch calls whichever libblas.so.3 the
# system selects; the reference BLAS is 5-8x slower on these matrix sizes).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
relay=""
seeds="1 2 3 4 5"
envs="CartPole-v1"
torch=0
python=/usr/bin/python3
csv=""
keep=0

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
    --relay) relay=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --all-envs) envs="CartPole-v1 Acrobot-v1 Pendulum-v1 MountainCar-v0"; shift ;;
    --envs) envs=$2; shift 2 ;;
    --torch) torch=1; shift ;;
    --python) python=$2; shift 2 ;;
    --csv) csv=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ -z "$relay" ]; then
    for c in "$root"/build-trainbench/src/cli/relay "$root"/build/src/cli/relay; do
        if [ -x "$c" ]; then relay=$c; break; fi
    done
fi
if [ -z "$relay" ] || [ ! -x "$relay" ]; then
    echo "run.sh: relay binary not found; build it (cmake --build BUILD --target relay) and pass --relay PATH" >&2
    exit 2
fi
if [ ! -x /usr/bin/time ]; then
    echo "run.sh: /usr/bin/time is missing (Debian package: time)" >&2
    exit 2
fi
if [ "$torch" = 1 ] && ! "$python" -c 'import torch, numpy' 2>/dev/null; then
    echo "run.sh: --torch needs $python with torch and numpy (Debian: python3-torch python3-numpy)" >&2
    exit 2
fi

work=$(mktemp -d /tmp/relay-trainbench.XXXXXX)
if [ "$keep" = 0 ]; then trap 'rm -rf "$work"' EXIT; else echo "run.sh: run files kept in $work" >&2; fi
rows=$work/rows.tsv
: >"$rows"

# parse LINE -> "status steps updates wall mean_return" from a result line of either program.
parse() {
    sed -n -E 's/^[^:]+: (.*) after ([0-9]+) steps, ([0-9]+) updates, ([0-9.]+) s .*mean return \(last 100\) ([-0-9.naif]+) over.*/\1\t\2\t\3\t\4\t\5/p' <<<"$1"
}

# run_one IMPL ENV SEED CMD... : runs one training, appends a row to $rows and prints it.
run_one() {
    local impl=$1 env=$2 seed=$3
    shift 3
    local load out tfile line fields status steps updates wall ret pwall cpu
    load=$(cut -d' ' -f1 /proc/loadavg)
    tfile=$work/time.$impl.$env.$seed
    out=$("${@}" 2>"$work/err.$impl.$env.$seed")
    local rc=$?
    line=$(grep -E ' after [0-9]+ steps' <<<"$out" | tail -1)
    fields=$(parse "$line")
    if [ "$rc" != 0 ] || [ -z "$fields" ]; then
        echo "run.sh: $impl $env seed $seed failed (exit $rc): $(tail -3 "$work/err.$impl.$env.$seed")" >&2
        fields=$(printf 'failed\t0\t0\tnan\tnan')
    fi
    IFS=$'\t' read -r status steps updates wall ret <<<"$fields"
    read -r pwall cpu < <(tail -1 "$tfile" 2>/dev/null || echo "nan nan")
    local solved=0
    [ "$status" = "target reached" ] && solved=1
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$impl" "$env" "$seed" "$solved" \
        "$steps" "$updates" "$wall" "$pwall" "$cpu" "$ret" "$load" >>"$rows"
    printf '%-6s %-15s %4s  %-6s %8s %6s %8s %8s %8s %9s %6s\n' "$impl" "$env" "$seed" \
        "$([ $solved = 1 ] && echo yes || echo no)" "$steps" "$updates" "$wall" "$pwall" "$cpu" \
        "$ret" "$load"
}

timed() { # timed TFILE CMD... : runs CMD under /usr/bin/time, "wall cpu" into TFILE
    local tfile=$1
    shift
    /usr/bin/time -o "$tfile" -f '%e %U+%S' "$@"
}

echo "# relay: $relay (commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown))"
echo "# machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# started $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-15s %4s  %-6s %8s %6s %8s %8s %8s %9s %6s\n' impl env seed solved steps updates \
    wall_s proc_s cpu_s return load1
for env in $envs; do
    for seed in $seeds; do
        run_one relay "$env" "$seed" timed "$work/time.relay.$env.$seed" "$relay" train --quiet \
            --env "$env" --seed "$seed" --sink none --out "$work/run-$env-$seed"
        if [ "$torch" = 1 ] && [ "$env" = CartPole-v1 ]; then
            run_one torch "$env" "$seed" timed "$work/time.torch.$env.$seed" \
                env LD_LIBRARY_PATH="${TORCH_LD_LIBRARY_PATH:-}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
                "$python" "$root/tools/torch_ppo.py" --seed "$seed"
        fi
    done
done

# cpu column is "user+sys": evaluate it in awk.
echo
echo "# summary (wall_s = the program's own training time; proc_s includes start-up)"
awk -F'\t' '
function med(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
    k = $1 SUBSEP $2
    if (!(k in n)) { order[++no] = k }
    n[k]++; solved[k] += $4
    split($9, c, "+"); cpu = c[1] + c[2]
    W[k, n[k]] = $7 + 0; S[k, n[k]] = $5 + 0; P[k, n[k]] = $8 + 0; C[k, n[k]] = cpu; R[k, n[k]] = $10 + 0
    if (!(k in worst) || $7 + 0 > worst[k]) worst[k] = $7 + 0
    if (!(k in wsteps) || $5 + 0 > wsteps[k]) wsteps[k] = $5 + 0
}
END {
    printf "%-6s %-15s %7s %9s %9s %9s %9s %10s %10s %9s\n", "impl", "env", "solved", "med_wall", "worst", "med_proc", "med_cpu", "med_steps", "max_steps", "med_ret"
    for (i = 1; i <= no; i++) {
        k = order[i]; split(k, p, SUBSEP); m = n[k]
        for (j = 1; j <= m; j++) { w[j] = W[k, j]; s[j] = S[k, j]; q[j] = P[k, j]; u[j] = C[k, j]; r[j] = R[k, j] }
        mw[k] = med(w, m); ms[k] = med(s, m); mp[k] = med(q, m); mc[k] = med(u, m)
        printf "%-6s %-15s %3d/%-3d %9.2f %9.2f %9.2f %9.2f %10d %10d %9.1f\n", p[1], p[2], solved[k], m, mw[k], worst[k], mp[k], mc[k], ms[k], wsteps[k], med(r, m)
    }
    for (i = 1; i <= no; i++) {
        k = order[i]; split(k, p, SUBSEP)
        if (p[1] != "relay") continue
        t = "torch" SUBSEP p[2]
        if (!(t in n)) continue
        printf "\n%s: torch/relay median wall %.2fx (process %.2fx, cpu %.2fx); median steps relay %d vs torch %d (%s)\n", p[2], mw[t] / mw[k], mp[t] / mp[k], mc[t] / mc[k], ms[k], ms[t], ms[k] <= ms[t] ? "relay uses no more steps" : "relay uses MORE steps"
    }
}' "$rows"

if [ -n "$csv" ]; then
    { printf 'impl,env,seed,solved,steps,updates,wall_s,proc_s,cpu_s,mean_return_100,load1\n'; tr '\t' ',' <"$rows"; } >"$csv"
    echo "# rows written to $csv"
fi
