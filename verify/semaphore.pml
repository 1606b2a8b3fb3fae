/* verify/semaphore.pml
 * -----------------------------------------------------------------------------
 * Model of mp::ResidentSemaphore (mp/sync/semaphore.cc: TryAcquire, Acquire,
 * Release) with NPROC processes that each Acquire once, hold, and Release(1),
 * on a semaphore of initial value VALUE (bound VALUE: a BoundedSemaphore).
 * Infinite deadlines, no kills. The spin phase of Acquire is one TryAcquire
 * attempt (the rest only repeats it).
 *
 * count_ is the futex word; FUTEX_WAIT(count_, 0): atomically { if count_ !=
 * 0 return; else enqueue }, then block until woken. FutexWake(n) dequeues up
 * to n sleepers.
 *
 * Properties: at most VALUE holders at once and count_ within [0, VALUE]
 * (assertions); no process asleep for ever (invalid end states; every
 * process finishes: LTL `all_finish` under weak fairness).
 *
 * Broken twins (spin -D...):
 *   BREAK_NO_ANNOUNCE      a waiter sleeps without counting itself in
 *                          waiters_ (the fetch_add dropped)
 *   BREAK_WAITERS_FIRST    Release reads waiters_ before its CAS on count_
 *                          (the store-load order of the Dekker pair lost)
 * -------------------------------------------------------------------------- */

#ifndef NPROC
#define NPROC 3
#endif
#ifndef VALUE
#define VALUE 1
#endif

byte count = VALUE;        /* semaphore.h:61 count_ */
byte waiters;              /* semaphore.h:62 waiters_ */
bool asleep[NPROC + 1];
byte holders;              /* ghost */
bool fin[NPROC + 1];

inline wake_one() {
  if
  :: asleep[1] -> asleep[1] = 0
  :: asleep[2] -> asleep[2] = 0
  :: NPROC > 2 && asleep[NPROC] -> asleep[NPROC] = 0
  :: else -> skip
  fi
}

proctype P(byte me) {
  byte v;
  bool ok, w;
  /* ---- Acquire ---- */
  /* spin phase: TryAcquire (CAS v -> v-1 while v > 0) */
  atomic { if :: count > 0 -> count--; ok = 1 :: else -> ok = 0 fi }
  do
  :: ok -> break
  :: else ->
#ifndef BREAK_NO_ANNOUNCE
     waiters++;                                /* fetch_add, seq_cst */
#endif
     v = count;                                /* load, seq_cst */
     if
     :: v == 0 ->
        atomic {                               /* FutexWait(&count_, 0) */
          if
          :: count == 0 -> asleep[me] = 1
          :: else -> skip
          fi;
          !asleep[me]
        }
     :: else -> skip
     fi;
#ifndef BREAK_NO_ANNOUNCE
     waiters--;                                /* fetch_sub */
#endif
     atomic {                                  /* TryAcquire */
       if :: count > 0 -> count--; ok = 1 :: else -> ok = 0 fi
     }
  od;
  atomic { holders++; assert(holders <= VALUE) }
  atomic { holders-- }
  /* ---- Release(1) ---- */
#ifdef BREAK_WAITERS_FIRST
  w = (waiters != 0);
#endif
  atomic {                                     /* CAS v -> v + 1, seq_cst */
    assert(count + 1 <= VALUE);                /* never over the bound */
    count++
  }
#ifndef BREAK_WAITERS_FIRST
  w = (waiters != 0);                          /* load waiters_, seq_cst */
#endif
  if
  :: w -> atomic { wake_one() }                /* FutexWake(&count_, 1) */
  :: else -> skip
  fi;
  fin[me] = 1
}

init {
  byte i = 1;
  atomic {
    do
    :: i <= NPROC -> run P(i); i++
    :: else -> break
    od
  }
}

ltl all_finish { <> (fin[1] && fin[2] && fin[NPROC]) }
