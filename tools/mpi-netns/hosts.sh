#!/bin/sh
# Simulated hosts for MPI runs on one machine (root only):
#   hosts.sh up N    bridge mp-br (10.78.0.1/24) and network namespaces
#                    mph1..mphN, mphK = 10.78.0.(10+K), each with eth0 on the
#                    bridge and lo up
#   hosts.sh down    kills what still runs in mph1..mph9 (by pid), deletes
#                    the namespaces and the bridge
# mpirun reaches the hosts through agent.sh (its rsh agent), which adds
# private IPC, mount and UTS namespaces per run: each host has its own
# /dev/shm, /tmp and hostname. Based on ../shared/recipes/mpi-netns (pitfalls
# there: --bind-to none, nothing under /tmp, mpi_yield_when_idle).
set -e
case "${1:-}" in
  up)
    n=${2:-3}
    ip link add mp-br type bridge
    ip addr add 10.78.0.1/24 dev mp-br
    ip link set mp-br up
    k=1
    while [ "$k" -le "$n" ]; do
      ip netns add "mph$k"
      ip link add "mp-veth$k" type veth peer name eth0 netns "mph$k"
      ip link set "mp-veth$k" master mp-br up
      ip -n "mph$k" addr add "10.78.0.$((10 + k))/24" dev eth0
      ip -n "mph$k" link set eth0 up
      ip -n "mph$k" link set lo up
      k=$((k + 1))
    done
    ;;
  down)
    set +e
    for ns in $(ip netns list | awk '/^mph[1-9]( |$)/ {print $1}'); do
      for p in $(ip netns pids "$ns"); do kill "$p" 2>/dev/null; done
      sleep 0.3
      for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null; done
      ip netns del "$ns"
    done
    ip link del mp-br 2>/dev/null
    exit 0
    ;;
  *)
    echo "usage: $0 up N | down" >&2
    exit 2
    ;;
esac
