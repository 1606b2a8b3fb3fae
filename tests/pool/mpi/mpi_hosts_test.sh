#!/bin/bash
# A Map across 3 simulated hosts (tools/mpi-netns: network namespaces on a
# bridge, each run in its own IPC/mount/UTS namespaces). Needs root and no
# hosts left from an earlier run (`tools/mpi-netns/hosts.sh down`).
# Layout: 4 ranks, --host mph1:2,mph2:1,mph3:1: rank 0 and a serving rank on
# mph1, one serving rank on each of mph2 and mph3.
set -u
bin=$(realpath "$1")
hosts=$(realpath "$2")
agent=$(realpath "$3")
if [ "$(id -u)" != 0 ]; then echo "needs root (ip netns)"; exit 1; fi
"$hosts" up 3 || { echo "FAIL: hosts.sh up 3"; "$hosts" down; exit 1; }
trap '"$hosts" down' EXIT
# mpirun's cwd must exist on every host (not under /tmp, private there).
cd /
out=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  timeout -k 5 120 mpirun --allow-run-as-root \
  --mca plm_rsh_agent "$agent" --mca plm_rsh_no_tree_spawn 1 \
  --mca pml ob1 --mca btl vader,tcp,self \
  --mca btl_tcp_if_include 10.78.0.0/24 --mca oob_tcp_if_include 10.78.0.0/24 \
  --bind-to none --mca mpi_yield_when_idle 1 \
  --host mph1:2,mph2:1,mph3:1 -n 4 "$bin" 2>&1)
echo "$out"
grep -q "MPI_HOSTS_TEST rc=0" <<<"$out" || { echo "FAIL"; exit 1; }
