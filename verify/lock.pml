/* verify/lock.pml
 * -----------------------------------------------------------------------------
 * Model of mp::ResidentLock (mp/sync/lock.h, mp/sync/lock.cc) on the kernel
 * robust-list path (head != nullptr, mp/sync/internal/robust_list.h), with
 * NPROC processes that each acquire and release the lock ITERS times, and a
 * killer that may SIGKILL up to KILLS of them at any step.
 *
 * The lock word (lock.h ResidentLock::word_, bits in robust_list.h) is kept as three fields that are always read
 * and written together inside one atomic step, as the hardware does with the
 * one 32-bit word:   owner (TID, 0 = free) | od (OWNER_DIED, bit 30)
 *                    | wt (WAITERS, bit 31)
 *
 * FUTEX_WAIT(word, v): atomically { if word != v return; else enqueue }, then
 * block until a FUTEX_WAKE dequeues us (no spurious wake-ups: the stricter
 * case for liveness). FUTEX_WAKE one: dequeue any one sleeper.
 *
 * Death (the kernel's exit_robust_list / handle_futex_death, Linux >= 5.5),
 * atomic at the dead thread's exit, for this lock:
 *   owner == dead      -> word = (word & WAITERS) | OWNER_DIED;
 *                         wake one if WAITERS was set
 *   list_op_pending == this lock and owner == 0 -> wake one (the kernel's
 *                         "woken waiter / unlocker killed" case)
 *   otherwise nothing; a sleeper simply leaves the futex queue.
 *
 * Broken twins (one protective step removed, chosen with spin -D...):
 *   BREAK_RELEASE_WAKE  Release skips FutexWakeOne (lock.h Unlock)
 *   BREAK_KERNEL_WAKE   the kernel marks OWNER_DIED but wakes nobody
 *   BREAK_IGNORE_OD     TakeOver does not report kOwnerDied (lock.cc TakeOver)
 *   BREAK_SLEPT_WAITERS a woken waiter takes the lock without re-setting
 *                       WAITERS (AcquireSlow's "slept ? kWaiters : 0" dropped)
 * -------------------------------------------------------------------------- */

#ifndef NPROC
#define NPROC 3
#endif
#ifndef ITERS
#define ITERS 1
#endif
#ifndef KILLS
#define KILLS 1
#endif

#define NONE 0
#define ACQ  1   /* LockResult::kAcquired */
#define OD   2   /* LockResult::kOwnerDied */

/* lock.h ResidentLock::word_ */
byte owner;            /* bits 0-29: owner TID (process number 1..NPROC) */
bool odbit;              /* bit 30: OWNER_DIED */
bool wt;               /* bit 31: WAITERS */

bool asleep[NPROC + 1];   /* in the futex wait queue of word_ */
bool pending[NPROC + 1];  /* robust list_op_pending == &this lock */
bool kill[NPROC + 1];     /* SIGKILL sent */
bool dead[NPROC + 1];     /* exited (kernel exit handling done) */
bool fin[NPROC + 1];      /* finished all iterations */
byte kills;

/* Ghosts for the properties */
byte incs;                /* processes inside the critical section */
bool in_cs[NPROC + 1];
bool want[NPROC + 1];     /* inside Acquire, not yet returned */
byte deaths;              /* holder deaths: the kernel set OWNER_DIED */
byte reported;            /* Acquire returned kOwnerDied */

#define sleepers (asleep[1] || asleep[2] || (NPROC > 2 && asleep[NPROC]))
/* Someone sleeps on the futex while nobody (live) holds the lock. */
#define stranded (sleepers && owner == 0)

/* FUTEX_WAKE(word_, 1): dequeue one sleeper, any. */
inline futex_wake_one() {
  if
  :: asleep[1] -> asleep[1] = 0
  :: asleep[2] -> asleep[2] = 0
  :: NPROC > 2 && asleep[NPROC] -> asleep[NPROC] = 0
  :: else -> skip
  fi
}

/* The word equals the snapshot (v_owner, v_od, v_wt). */
#define word_is_v (owner == v_owner && odbit == v_od && wt == v_wt)

/* Exit of process `me` after SIGKILL: the kernel's robust-list walk. */
inline kernel_exit() {
  atomic {
    dead[me] = 1;
    want[me] = 0;
    asleep[me] = 0;                  /* leaves the futex queue */
    if
    :: in_cs[me] -> in_cs[me] = 0; incs--
    :: else -> skip
    fi;
    if
    :: owner == me ->                /* handle_futex_death: holder died */
       owner = 0; odbit = 1;            /* word = (word & WAITERS) | OWNER_DIED */
       deaths++;
#ifndef BREAK_KERNEL_WAKE
       if
       :: wt -> futex_wake_one()
       :: else -> skip
       fi
#endif
    :: owner == 0 && pending[me] ->  /* pending op on a free word: wake one */
#ifndef BREAK_KERNEL_WAKE
       futex_wake_one()
#else
       skip
#endif
    :: else -> skip
    fi;
    pending[me] = 0;
    assert(deaths == reported + odbit)
  }
}

proctype P(byte me) {
  byte v_owner;          /* AcquireSlow: v, the snapshot of the word */
  bool v_od, v_wt;
  bool slept;            /* AcquireSlow: slept */
  bool yielded;          /* AcquireSlow: yields (kYields, modelled as 1) */
  bool old_wt;           /* Unlock: old & kWaiters */
  byte result;
  byte it;
  {
  do
  :: it < ITERS ->
     /* ---- Acquire: lock.h ResidentLock::Acquire ---- */
     want[me] = 1;
     pending[me] = 1;                          /* Acquire: SetPending */
     atomic {                                  /* Acquire: CAS 0 -> tid */
       if
       :: owner == 0 && !odbit && !wt -> owner = me; result = ACQ
       :: else -> result = NONE
       fi
     }
     if
     :: result == ACQ ->
        pending[me] = 0                        /* Acquire: Enqueue,
                                                  ClearPending */
     :: else ->
        /* AcquireSlow (lock.cc): no spin, straight to the loop (its
           yields are looks again, below). */
        slept = 0;
        yielded = 0;
        do
        :: atomic {                            /* AcquireSlow: load */
             v_owner = owner; v_od = odbit; v_wt = wt
           }
           if
           :: v_owner == 0 ->                  /* AcquireSlow: owner == 0 */
              /* AcquireSlow -> TakeOver: CAS v -> tid |
                 (v & W) | (slept ? W : 0), acquire */
              atomic {
                if
                :: word_is_v ->
                   owner = me; odbit = 0;
#ifndef BREAK_SLEPT_WAITERS
                   wt = v_wt || slept;
#else
                   wt = v_wt;
#endif
                   if
#ifndef BREAK_IGNORE_OD
                   :: v_od -> reported++; result = OD  /* TakeOver: died */
#endif
                   :: else -> result = ACQ
                   fi;
                   assert(deaths == reported + odbit)
                :: else -> result = NONE        /* TakeOver lost: retry */
                fi
              }
              if
              :: result != NONE ->
                 pending[me] = 0;              /* TakeOver: Enqueue,
                                                  ClearPending */
                 break
              :: else -> skip                  /* AcquireSlow: continue */
              fi
           :: v_owner != 0 && !yielded ->
              /* AcquireSlow: held, yields left: sched_yield, look again
                 (kYields of them in lock.cc; one here: each is a re-read) */
              yielded = 1
           :: else ->
              /* AcquireSlow: the fallback (head == nullptr) is not
                 modelled; the infinite deadline never expires */
              if
              :: !v_wt ->                      /* AcquireSlow: set WAITERS */
                 atomic {
                   if
                   :: word_is_v -> wt = 1; v_wt = 1; result = ACQ
                   :: else -> result = NONE    /* AcquireSlow: CAS lost, continue */
                   fi
                 }
              :: else -> result = ACQ
              fi;
              if
              :: result == ACQ ->
                 /* AcquireSlow: FutexWait(&word_, v): the compare and the
                    enqueue are one atomic step; then block until woken. */
                 atomic {
                   if
                   :: word_is_v -> asleep[me] = 1
                   :: else -> skip             /* EAGAIN */
                   fi;
#ifdef BREAK_UNSLICED_WAIT
                   !asleep[me]                 /* sleep until woken */
#else
                   /* lock.cc AcquireSlow: every sleep is a slice
                      (kRobustSlice / kFallbackSlice), then look again */
                   if
                   :: !asleep[me]
                   :: asleep[me] -> asleep[me] = 0   /* slice timed out */
                   fi
#endif
                 }
                 slept = 1;                    /* AcquireSlow: slept = true */
                 yielded = 0                   /* ... and yields = 0 */
              :: else -> skip
              fi
           fi
        od
     fi;
     want[me] = 0;

     /* ---- critical section ---- */
     atomic {
       in_cs[me] = 1; incs++;
       assert(incs == 1);                      /* mutual exclusion */
       assert(owner == me && !odbit)
     }
     atomic { in_cs[me] = 0; incs-- }

     /* ---- Release: lock.h ResidentLock::Release, Unlock ---- */
     /* Release: the owner check passes (we hold it).
        ReleaseSlow: owner_died_ = 0, a field of the holder only. */
     pending[me] = 1;                          /* Unlock: SetPending,
                                                  Dequeue */
     atomic {                                  /* Unlock: exchange 0 */
       old_wt = wt; owner = 0; odbit = 0; wt = 0
     }
#ifndef BREAK_RELEASE_WAKE
     if                                        /* Unlock: wake if WAITERS */
     :: old_wt -> atomic { futex_wake_one() }
     :: else -> skip
     fi;
#endif
     pending[me] = 0;                          /* Unlock: ClearPending */
     it++
  :: else -> break
  od;
  fin[me] = 1
  } unless { kill[me] -> kernel_exit() }
}

/* Where a process may be killed. By default anywhere (any step). With
   KILL_SAFE_POINTS only while it holds the lock (in the critical section)
   or runs outside Acquire/Release: this excludes the windows where the
   kernel's robust-list recovery is incomplete (a kill between Release's
   exchange and its FutexWakeOne, or of a waiter, sleeping or just woken,
   that swallows a wake-up): see README.md, "Finding". */
#ifdef KILL_SAFE_POINTS
#define killable(i) (in_cs[i] || (!want[i] && !pending[i]))
#else
#define killable(i) 1
#endif

active proctype Killer() {
  do
  :: atomic { kills < KILLS && !kill[1] && !fin[1] && killable(1) ->
              kill[1] = 1; kills++ }
  :: atomic { kills < KILLS && !kill[2] && !fin[2] && killable(2) ->
              kill[2] = 1; kills++ }
  :: atomic { NPROC > 2 && kills < KILLS && !kill[NPROC] && !fin[NPROC] &&
              killable(NPROC) -> kill[NPROC] = 1; kills++ }
  :: break
  od
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

/* Liveness, checked with pan -a -f (weak fairness). */
/* Nobody sleeps forever on the futex while the lock is free. */
ltl no_stranded { []<> !stranded }
/* Every process inside Acquire eventually returns (or is killed). */
ltl acquire_returns {
  [] ((want[1] -> <> !want[1]) && (want[2] -> <> !want[2]) &&
      (want[NPROC] -> <> !want[NPROC]))
}
