#!/bin/bash
# Runs mp::mpi::Pool's tests under mpirun (3 ranks on this host), the
# pool_mpi example under mpirun, and both without mpirun (the message that
# says how to start them). Every mpirun is bounded by `timeout`: a hang is
# a failure, never a stuck test.
set -u
test_bin="$1"
example="$2"
# ASan builds: OpenMPI's own allocations at exit are not ours to report.
export LSAN_OPTIONS="suppressions=$(realpath "$3"):fast_unwind_on_malloc=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export OMPI_MCA_mca_base_component_disable_dlclose=1 PMIX_MCA_mca_base_component_disable_dlclose=1
export OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_btl=self,vader,tcp
export OMPI_MCA_pml=ob1
export OMPI_ALLOW_RUN_AS_ROOT=1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Directories of its own for ORTE's session (files and PMIx's sockets: a
# short path) and for vader's shared-memory segments: each Bazel sandbox
# has its own pid namespace, so two copies of this test at once
# (--runs_per_test) can start mpiruns with the same pid, and the names
# derived from it collide in the shared /tmp and /dev/shm (MPI_Init_thread
# failed, or a rank crashed in vader, in 3 of 4 concurrent runs).
TMPDIR=$(mktemp -d /tmp/mp-mpi.XXXXXX) || exit 1
export TMPDIR
shm_dir=$(mktemp -d /dev/shm/mp-mpi.XXXXXX) || exit 1
export OMPI_MCA_btl_vader_backing_directory="$shm_dir"
trap 'rm -rf "$TMPDIR" "$shm_dir"' EXIT
trap 'exit 143' TERM INT  # Bazel's timeout: still through the EXIT trap
fail=0
mpirun=(timeout -k 5 120 mpirun --allow-run-as-root --oversubscribe --bind-to none -n 3)

echo "== the tests, 3 ranks, --enable-recovery"
out=$("${mpirun[@]}" --enable-recovery "$test_bin" 2>&1); rc=$?
echo "$out"
if ! grep -q "MPI_POOL_TEST rc=0" <<<"$out"; then
  echo "FAIL: the MPI pool tests did not pass"; fail=1
fi
# 124/137: the job hung (at exit, after the rank kill) and timeout ended it.
[ "$rc" = 0 ] || { echo "FAIL: mpirun exited $rc"; fail=1; }

echo "== the tests but the rank kill and stop, without --enable-recovery (ends through"
echo "   MPI_Finalize on every rank: LeakSanitizer runs there under asan)"
out=$("${mpirun[@]}" "$test_bin" --gtest_filter=-*RankKilled*:*SilentRank* 2>&1); rc=$?
echo "$out"
grep -q "MPI_POOL_TEST rc=0" <<<"$out" || { echo "FAIL: second run"; fail=1; }
[ "$rc" = 0 ] || { echo "FAIL: mpirun exited $rc"; fail=1; }

echo "== pool_mpi under mpirun"
out=$("${mpirun[@]}" "$example" 2>&1); rc=$?
echo "$out"
for line in "Input   : [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" \
            "Built-in: [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]" \
            "Pool    : [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]" \
            "Starting PoolWorker-1"; do
  grep -qF "$line" <<<"$out" || { echo "FAIL: missing '$line'"; fail=1; }
done
[ "$rc" = 0 ] || { echo "FAIL: pool_mpi under mpirun exited $rc"; fail=1; }

echo "== without mpirun"
for bin in "$example" "$test_bin"; do
  out=$(env -u OMPI_COMM_WORLD_SIZE timeout 30 "$bin" 2>&1); rc=$?
  echo "$out"
  [ "$rc" = 2 ] || { echo "FAIL: $bin without mpirun exited $rc, not 2"; fail=1; }
  grep -q "must be started by mpirun" <<<"$out" && grep -q "mpirun -n 3" <<<"$out" ||
    { echo "FAIL: no message saying how to start $bin"; fail=1; }
done
exit $fail
