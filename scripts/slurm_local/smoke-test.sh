#!/usr/bin/env bash
# (From the team's SLURM feasibility study, ../shared/reference/slurm.md, kept here so that
# CI and the tests can start a real single-node SLURM on a fresh machine.)
# smoke-test.sh - exercise a running local SLURM (from start-slurm.sh): sbatch --wrap,
# output file, exit code, afterok/afternotok dependencies, job array, scancel,
# sacct (when accounting is on) or scontrol show job. Prints "N passed, N failed".
set -uo pipefail
W=$(mktemp -d /tmp/slurm-smoke.XXXXXX); cd "$W"
pass=0; fail=0
ok()  { echo "ok   - $*"; pass=$((pass+1)); }
bad() { echo "FAIL - $*"; fail=$((fail+1)); return 1; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }   # check DESCRIPTION 'SHELL CONDITION' 
state() { scontrol show job "$1" -o 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2; }
exitc() { scontrol show job "$1" -o 2>/dev/null | grep -o ' ExitCode=[0-9:]*' | head -1 | cut -d= -f2; }
wait_done() { # wait until none of the given jobs is in squeue (max 60 s)
  local i; for i in $(seq 300); do [ -z "$(squeue -h -j "$(IFS=,; echo "$*")" -o %i 2>/dev/null)" ] && return 0; sleep 0.2; done; return 1
}
acct=0; cfg=$(scontrol show config); grep -q "AccountingStorageType *= accounting_storage/slurmdbd" <<< "$cfg" && acct=1

t0=$(date +%s%N)
A=$(sbatch --parsable -o "$W/a-%j.out" --wrap 'echo hello $SLURM_JOB_ID; sleep 1')
B=$(sbatch --parsable -o "$W/b-%j.out" -d afterok:$A --wrap 'echo B')
F=$(sbatch --parsable -o "$W/f-%j.out" --wrap 'echo failing; exit 3')
C=$(sbatch --parsable -o /dev/null -d afterok:$F --kill-on-invalid-dep=yes --wrap 'echo never')
D=$(sbatch --parsable -o "$W/d-%j.out" -d afternotok:$F --wrap 'echo D')
R=$(sbatch --parsable -o "$W/r-%A_%a.out" --array=0-3 --wrap 'echo task $SLURM_ARRAY_TASK_ID')
L=$(sbatch --parsable -o /dev/null --wrap 'sleep 300')
for i in $(seq 100); do [ "$(state $L)" = RUNNING ] && break; sleep 0.1; done
scancel "$L"
wait_done $A $B $F $C $D $R $L || bad "jobs did not finish within 60 s"
echo "# all jobs finished after $(( ($(date +%s%N) - t0) / 1000000 )) ms"

check "A completed, output written"     '[ "$(state $A)" = COMPLETED ] && grep -q "hello $A" "$W/a-$A.out"'
check "B ran after A (afterok)"         '[ "$(state $B)" = COMPLETED ]'
check "F failed with exit code 3"       '[ "$(state $F)" = FAILED ] && [ "$(exitc $F)" = 3:0 ]'
check "C cancelled (afterok on failed)" '[ "$(state $C)" = CANCELLED ]'
check "D ran (afternotok)"              '[ "$(state $D)" = COMPLETED ]'
check "array: 4 output files"           '[ "$(ls "$W"/r-${R}_*.out 2>/dev/null | wc -l)" = 4 ]'
check "L cancelled by scancel"          '[ "$(state $L)" = CANCELLED ]'
if [ $acct = 1 ]; then
  # job records reach slurmdbd asynchronously: poll until all 7 jobs + 4 tasks are final
  for i in $(seq 50); do
    got=$(sacct -X -n -P -j $A,$B,$F,$C,$D,$R,$L -o JobID,State,ExitCode)
    [ "$(grep -cE '\|(COMPLETED|FAILED|CANCELLED)' <<< "$got")" -ge 10 ] && break; sleep 0.2
  done
  echo "# sacct final after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  check "sacct: A COMPLETED 0:0"        'grep -q "^$A|COMPLETED|0:0$" <<< "$got"'
  check "sacct: F FAILED 3:0"           'grep -q "^$F|FAILED|3:0$" <<< "$got"'
  check "sacct: L CANCELLED"            'grep -q "^$L|CANCELLED" <<< "$got"'
  check "sacct: array has 4 tasks"      '[ "$(grep -c "^${R}_[0-3]|COMPLETED|0:0$" <<< "$got")" = 4 ]' || echo "$got"
else
  check "sacct -c (jobcomp/filetxt): F FAILED" 'grep -q "JobId=$F .*JobState=FAILED" "$(scontrol show config | awk '\''/^JobCompLoc/ {print $3}'\'')"'
fi
rm -rf "$W"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
