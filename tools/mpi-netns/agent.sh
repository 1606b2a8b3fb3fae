#!/bin/sh
# mpirun's rsh agent (--mca plm_rsh_agent <this file>) for the hosts of
# hosts.sh: called as ssh would be, `agent.sh [-options] HOST WORDS...`, it
# runs WORDS with sh inside HOST's network namespace, in new IPC, mount and
# UTS namespaces: hostname HOST, private tmpfs on /dev/shm and /tmp.
# HOST: mph1..mph9 or 10.78.0.11..19.
while [ $# -gt 0 ]; do
  case "$1" in
    -*) shift ;;
    *) break ;;
  esac
done
host=$1
shift
case "$host" in
  mph[1-9]) ns=$host ;;
  10.78.0.1[1-9]) ns="mph${host#10.78.0.1}" ;;
  *) echo "agent.sh: no simulated host '$host'" >&2; exit 255 ;;
esac
exec ip netns exec "$ns" unshare --ipc --mount --uts --propagation private \
  sh -c 'hostname "$1" &&
         mount -t tmpfs -o mode=1777 "shm-$1" /dev/shm &&
         mount -t tmpfs -o mode=1777 "tmp-$1" /tmp &&
         exec sh -c "$2"' agent "$ns" "$*"
