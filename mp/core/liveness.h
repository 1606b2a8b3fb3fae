// mp/core/liveness.h
// -----------------------------------------------------------------------------
// Who am I, and is that other task still alive: the one answer to both, used
// by every package that names a holder or a claimer by its kernel TID (the
// sync package's lock word, the queue's pid locks and record claims).
//
//   const mp::liveness::ThreadIdentity& me = mp::liveness::CurrentThread();
//   ... word.store(me.tid) ...
//   if (mp::liveness::TaskIsDead(holder)) TakeOver();
//
// Thread identity: the calling thread's TID and glibc's robust-list head,
// computed once per thread and cached in a constinit thread_local (a plain
// load on the fast path). A fork child has a new TID and an empty robust
// list: one pthread_atfork handler clears the cache of the forking thread
// (the only thread in the child), so the next call recomputes it.
//
// Liveness: a task is dead when the kernel no longer has it (kill(tid, 0)
// fails with ESRCH, or /proc/<tid> is gone) or when it is a zombie (killed
// but not yet reaped by its parent: kill() still finds it, but it will never
// run again, so a waiter whose dead holder is its own unreaped child must not
// wait for it). With a start time recorded when the task was named (field 22
// of /proc/<tid>/stat, clock ticks since boot), a recycled TID is told apart
// from the task that held it. A task in another PID namespace cannot be
// judged: its TID means another task here.

#ifndef MP_CORE_LIVENESS_H_
#define MP_CORE_LIVENESS_H_

#include <cstdint>

namespace mp::liveness {

// The calling thread's identity. Never has tid == 0 once filled.
struct ThreadIdentity {
  uint32_t tid = 0;             // gettid()
  void* robust_head = nullptr;  // glibc's registered robust_list_head, or null
                                // when it is missing or has an unexpected
                                // futex_offset (see mp/sync/lock.h)
};

// Offset from a robust-list node to its futex word, as glibc uses it for
// pthread_mutex_t on 64-bit Linux: a head with another offset is not used.
inline constexpr long kRobustFutexOffset = -32;

extern constinit thread_local ThreadIdentity tls_identity;
ThreadIdentity& CurrentThreadSlow();

inline ThreadIdentity& CurrentThread() {
  ThreadIdentity& id = tls_identity;
  if (__builtin_expect(id.tid == 0, 0)) return CurrentThreadSlow();
  return id;
}
inline uint32_t CurrentTid() { return CurrentThread().tid; }

// Whether the task `tid` will never run again: gone, or a zombie. False for
// tid 0 (nobody), for a live task, and when the answer cannot be had.
bool TaskIsDead(uint32_t tid);

// The task's start time (field 22 of /proc/<tid>/stat, clock ticks since
// boot), or 0 when the task does not exist or /proc cannot be read.
uint64_t TaskStartTime(uint32_t tid);

// As TaskIsDead(tid), and also true when a task `tid` exists but started at
// another time than `start_time` (the TID was recycled). A start_time of 0
// (unknown when recorded) checks the TID alone. Only the bits in
// `start_mask` are compared, for a start time kept truncated beside a pid
// in one word.
bool TaskIsDead(uint32_t tid, uint64_t start_time,
                uint64_t start_mask = ~uint64_t{0});

}  // namespace mp::liveness

#endif  // MP_CORE_LIVENESS_H_
