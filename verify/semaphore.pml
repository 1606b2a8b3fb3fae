/* verify/semaphore.pml
 * -----------------------------------------------------------------------------
 * Model of mp::ResidentSemaphore (mp/sync/semaphore.cc: TryAcquire, Acquire,
 * Unregister, Release) with NPROC processes that each Acquire once, hold, and
 * Release(1), on a semaphore of initial value VALUE (bound VALUE: a
 * BoundedSemaphore), and a killer that may SIGKILL up to KILLS of them at
 * any step except while holding a unit (a semaphore has no owner: a unit
 * taken by a process that dies is gone, as in Python, and its waiters wait
 * for ever by contract). Infinite deadlines. The spin phase of Acquire is one
 * TryAcquire attempt (the rest only repeats it). When every process has
 * finished or died, init passes through once more (TryAcquire, Release) and
 * checks that the waiters count has healed.
 *
 * count_ is the futex word; FUTEX_WAIT(count_, 0): atomically { if count_ !=
 * 0 return; else enqueue }, then sleep until FutexWake dequeues us or, by
 * default, the slice ends (SliceOf, kRobustSlice): a choice the verifier may
 * take at any moment while the process sleeps, made eventually under weak
 * fairness. FutexWake(1) dequeues one sleeper and says whether it did. A
 * killed process leaves the futex queue; the kernel does nothing else.
 *
 * waiters_ (semaphore.h) is two fields changed together in one atomic step,
 * as the one 32-bit word: `wcount` (bits 0-21) and `epoch` (bits 22-31,
 * modulo 4 here).
 *
 * Properties: at most VALUE holders at once and count_ within [0, VALUE];
 * the waiters count never wraps below zero (assertions); after everyone has
 * finished or died, one Release leaves the count at zero (assertion: a
 * waiter killed asleep does not leave it high for good); every process
 * finishes or dies (LTL `all_finish` under weak fairness; invalid end states
 * in safety mode).
 *
 * Broken twins (spin -D...):
 *   BREAK_UNSLICED_WAIT    a sleeper sleeps until woken (no slices)
 *   BREAK_NO_RESET         Release never drops registrations (the code
 *                          before the fix; with BREAK_UNSLICED_WAIT it is
 *                          that code: a releaser killed between its add and
 *                          its wake strands a sleeper, issue 16 hole 2)
 *   BREAK_NO_EPOCH         a waiter unregisters with a plain fetch_sub,
 *                          whatever epoch it registered in
 *   BREAK_NO_ANNOUNCE      a waiter sleeps without registering in waiters_
 *   BREAK_WAITERS_FIRST    Release reads waiters_ before its CAS on count_
 *                          (the store-load order of the Dekker pair lost)
 * -------------------------------------------------------------------------- */

#ifndef NPROC
#define NPROC 3
#endif
#ifndef VALUE
#define VALUE 1
#endif
#ifndef KILLS
#define KILLS 1
#endif
#define HEALER 0             /* init's pass-through: no sleep, no kill */

byte count = VALUE;        /* semaphore.h count_ */
byte wcount;               /* waiters_ bits 0-21 */
byte epoch;                /* waiters_ bits 22-31 */
bool asleep[NPROC + 1];
bool holding[NPROC + 1];   /* between a successful TryAcquire and Release */
bool kill[NPROC + 1];
bool dead[NPROC + 1];
bool fin[NPROC + 1];
byte kills;
byte holders;              /* ghost */

#define ended(i) (fin[i] || dead[i])

/* FutexWake(&count_, 1): dequeue one sleeper, if any; `woke` says so. */
inline wake_one(woke) {
  if
  :: asleep[1] -> asleep[1] = 0; woke = 1
  :: asleep[2] -> asleep[2] = 0; woke = 1
  :: NPROC > 2 && asleep[NPROC] -> asleep[NPROC] = 0; woke = 1
  :: else -> woke = 0
  fi
}

/* Release(1), semaphore.cc */
inline release(me) {
#ifdef BREAK_WAITERS_FIRST
  atomic { w_cnt = wcount; w_ep = epoch };
#endif
  atomic {                                     /* CAS v -> v + 1, seq_cst */
    assert(count + 1 <= VALUE);                /* never over the bound */
    count++;
    holding[me] = 0
  };
  /* MP_FAULT_POINT("semaphore.release.after_add") */
#ifndef BREAK_WAITERS_FIRST
  atomic { w_cnt = wcount; w_ep = epoch };     /* load waiters_, seq_cst */
#endif
  if
  :: w_cnt != 0 ->
     atomic { wake_one(woke) };                /* FutexWake(&count_, 1) */
#ifndef BREAK_NO_RESET
     if
     :: !woke ->                               /* woke nobody: new epoch */
        atomic {                               /* CAS w -> next epoch | 0 */
          if
          :: wcount == w_cnt && epoch == w_ep ->
             epoch = (epoch + 1) % 4; wcount = 0
          :: else -> skip
          fi
        }
     :: else -> skip
     fi
#endif
  :: else -> skip
  fi
}

proctype P(byte me) {
  byte v, tag, w_cnt, w_ep;
  bool ok, woke;
  {
  /* ---- Acquire ---- */
  /* spin phase: TryAcquire (CAS v -> v-1 while v > 0) */
  atomic {
    if :: count > 0 -> count--; ok = 1; holding[me] = 1 :: else -> ok = 0 fi
  };
  do
  :: ok -> break
  :: else ->
#ifndef BREAK_NO_ANNOUNCE
     atomic { tag = epoch; wcount++ };         /* fetch_add, seq_cst */
     assert(wcount <= NPROC);
#endif
     v = count;                                /* load, seq_cst */
     if
     :: v == 0 ->
        /* MP_FAULT_POINT("semaphore.acquire.before_sleep") */
        atomic {                               /* FutexWait(&count_, 0) */
          if
          :: count == 0 -> asleep[me] = 1
          :: else -> skip
          fi
        };
#ifdef BREAK_UNSLICED_WAIT
        !asleep[me]                            /* until woken */
#else
        if
        :: !asleep[me]                         /* woken or EAGAIN */
        :: asleep[me] -> asleep[me] = 0        /* the slice ended */
        fi
#endif
     :: else -> skip
     fi;
#ifndef BREAK_NO_ANNOUNCE
     atomic {                                  /* Unregister(tag) */
#ifndef BREAK_NO_EPOCH
       if
       :: epoch == tag && wcount > 0 -> wcount--
       :: else -> skip
       fi
#else
       wcount--                                /* fetch_sub */
#endif
     };
     assert(wcount <= NPROC);                  /* never below zero */
#endif
     atomic {                                  /* TryAcquire */
       if :: count > 0 -> count--; ok = 1; holding[me] = 1 :: else -> ok = 0 fi
     }
  od;
  atomic { holders++; assert(holders <= VALUE) };
  atomic { holders-- };
  /* ---- Release(1) ---- */
  release(me);
  fin[me] = 1
  } unless { kill[me] -> atomic { asleep[me] = 0; dead[me] = 1 } }
}

/* A kill anywhere except while holding a unit. */
active proctype Killer() {
  byte i;
  do
  :: kills < KILLS ->
     atomic {
       if
       :: i = 1
       :: i = 2
       :: i = NPROC
       fi;
       if
       :: !kill[i] && !ended(i) && !holding[i] -> kill[i] = 1; kills++
       :: else -> skip
       fi
     }
  :: break
  od
}

init {
  byte i = 1, w_cnt, w_ep;
  bool woke;
  atomic {
    do
    :: i <= NPROC -> run P(i); i++
    :: else -> break
    od
  };
  /* Everyone finished or died: one more Acquire/Release pass heals the
     waiters count (a unit is free: no holder may die). */
  ended(1) && ended(2) && ended(NPROC);
  atomic { assert(count > 0); count--; holding[HEALER] = 1 };
  release(HEALER);
  assert(wcount == 0)
}

ltl all_finish { <> (ended(1) && ended(2) && ended(NPROC)) }
