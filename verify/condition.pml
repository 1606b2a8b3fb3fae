/* verify/condition.pml
 * -----------------------------------------------------------------------------
 * Model of mp::ResidentCondition (mp/sync/condition.cc: SleepWhile, WaitImpl,
 * Notify) with 2 waiters that each Wait once (waiter 1 with no deadline,
 * waiter 2 with a deadline unless TIMED=0), a notifier that calls Notify(1)
 * NOTIFIES times, and (LATE, the default) a healthy notifier that calls
 * NotifyAll() once after the first one has finished or died. A killer may
 * SIGKILL up to KILLS of the first notifier and the waiters at any step.
 *
 * The lock is verified in lock.pml: here it is an atomic test-and-set (`lk`
 * holds the owner) that a holder's death frees with OWNER_DIED (`odbit`), which
 * the next acquirer takes and clears (lock.pml checks the kernel's part).
 *
 * seq_ is the futex word; FUTEX_WAIT(seq_, s): atomically { if seq_ != s
 * return; else enqueue }, then sleep until FutexWake dequeues us, or the
 * slice ends (SliceOf, kRobustSlice), or (waiter 2) the deadline passes: a
 * choice the verifier may take at any moment while the process sleeps, made
 * eventually under weak fairness. A killed process leaves the futex queue;
 * its `sleepers_` count stays, as in the C++. waiting and signals are one
 * 64-bit word: each change is one step (BREAK_SPLIT_GRANT undoes that).
 *
 * Properties (assertions):
 *   no underflow       waiting, signals never wrap below zero, and a
 *                      timed-out waiter always finds itself in waiting
 *                      (the C++ clamp never acts);
 *   notified after entry  a Wait returns true only if a Notify that found
 *                      waiters began after the Wait did: a signal left by a
 *                      waiter that died never satisfies a later waiter;
 *   no stored wake-up  returns <= signals granted, and without kills
 *                      returns <= the waiters the Notify calls could wake
 *                      (sum of min(n, waiters) at each call).
 * LTL (weak fairness):
 *   signal_taken       a live waiter with a signal pending that it may take
 *                      (one was granted after it entered) eventually takes
 *                      one, leaves, or the signals run out: no waiter sleeps
 *                      for ever through a signal owed to it, even when the
 *                      notifier died between its grant and its wake;
 *   signals_consumed   (no kills) every signal granted is consumed.
 *
 * Broken twins (spin -D...):
 *   BREAK_UNSLICED_WAIT      waiter 1 sleeps until woken (no slices)
 *   BREAK_NO_COMPLETION      a Notify with nobody to grant to does not wake
 *                            sleepers that hold pending signals
 *   BREAK_GRANT_BEFORE_BUMP  Notify grants, then bumps seq_ (the order
 *                            before the fix; with the two above it is that
 *                            code: issue 16, hole 3)
 *   BREAK_SPLIT_GRANT        waiting -= k and signals += k as two steps
 *   BREAK_ANY_SIGNAL         a waiter takes any pending signal (no entry
 *                            check)
 *   BREAK_SLEEPERS_FIRST     Notify reads `sleepers` before bumping seq_
 *   BREAK_SEQ_AFTER_RELEASE  Wait reads seq_ after releasing the lock
 *   BREAK_NO_WAITING_CHECK   Notify grants with nobody waiting
 * -------------------------------------------------------------------------- */

#ifndef NOTIFIES
#define NOTIFIES 2
#endif
#ifndef KILLS
#define KILLS 1
#endif
#ifndef TIMED
#define TIMED 1
#endif
#ifndef LATE
#define LATE 1
#endif
#define NW 2
#define NOTIFIER 3
#define LATER 4

byte lk;                   /* the lock's owner (0: free) */
bool odbit;                  /* OWNER_DIED, until the next acquirer */
byte seq;                  /* seq_ (futex word) */
byte waiting;              /* counts_ bits 0-31 */
byte signals;              /* counts_ bits 32-63 */
byte sleepers;             /* sleepers_ */
bool asleep[NW + 1];
bool kill[NOTIFIER + 1];
bool dead[NOTIFIER + 1];
bool fin[LATER + 1];
byte kills;

/* ghosts */
byte begun;                /* Notify calls that found waiters (bumped seq_) */
byte grants;               /* signals granted */
byte returned;             /* Waits returned true */
byte cap;                  /* sum of min(n, waiters) over Notify calls */
bool inwait[NW + 1];       /* between Wait's entry and its return */
byte b_entry[NW + 1];      /* begun at entry */
byte g_entry[NW + 1];      /* grants at entry */

#define ended(i) (fin[i] || dead[i])
#define TIMED_(me) (TIMED && me == 2)
#define nwaiting (inwait[1] + inwait[2])

inline lock(me, died) { atomic { lk == 0 -> lk = me; died = odbit; odbit = 0 } }
inline unlock() { lk = 0 }

inline wake(n) {
  if
  :: n >= 2 -> asleep[1] = 0; asleep[2] = 0
  :: else ->
     if
     :: asleep[1] -> asleep[1] = 0
     :: asleep[2] -> asleep[2] = 0
     :: else -> skip
     fi
  fi
}

/* A process's death: it leaves the futex queue; a held lock is freed with
   OWNER_DIED (the kernel's robust-list walk, lock.pml). */
inline die(me) {
  atomic {
    dead[me] = 1;
    if :: me <= NW -> asleep[me] = 0; inwait[me] = 0 :: else -> skip fi;
    if :: lk == me -> lk = 0; odbit = 1 :: else -> skip fi
  }
}

proctype Waiter(byte me) {
  byte s, entry, sig;
  bool died, expired;                          /* expired stays so */
  {
  lock(me, died);
  atomic {                                     /* WaitImpl, under the lock */
    entry = seq;
    waiting++;                                 /* one store */
    inwait[me] = 1; b_entry[me] = begun; g_entry[me] = grants
  };
  do
  ::
#ifndef BREAK_SEQ_AFTER_RELEASE
     s = seq;
     unlock();
#else
     unlock();
     s = seq;
#endif
     /* MP_FAULT_POINT("condition.wait.after_release") */
     /* SleepWhile (the spin loop only re-reads seq_: abstracted) */
     do
     :: seq != s -> break
     :: TIMED_(me) -> expired = 1; break       /* deadline passed */
     :: seq == s ->
        sleepers++;                            /* announce, seq_cst */
        atomic {                               /* FutexWait(seq_, s) */
          if
          :: seq == s -> asleep[me] = 1
          :: else -> skip
          fi
        };
#ifdef BREAK_UNSLICED_WAIT
        if
        :: !asleep[me]
        :: TIMED_(me) && asleep[me] -> asleep[me] = 0; expired = 1
        fi;
#else
        if
        :: !asleep[me]                         /* woken or EAGAIN */
        :: asleep[me] -> asleep[me] = 0        /* the slice ended */
        :: TIMED_(me) && asleep[me] -> asleep[me] = 0; expired = 1
        fi;
#endif
        sleepers--
     od;
     /* MP_FAULT_POINT("condition.wait.after_wake") */
     lock(me, died);                           /* reacquire */
     sig = signals;
     if
#ifndef BREAK_ANY_SIGNAL
     :: sig > 0 && seq != entry ->
#else
     :: sig > 0 ->
#endif
        atomic {
          signals = sig - 1;                   /* one store */
          returned++; inwait[me] = 0;
          assert(begun > b_entry[me]);         /* notified after entry */
          assert(returned <= grants);
          assert(KILLS > 0 || returned <= cap)
        };
        break
     :: else ->
        if
        :: died || expired ->                  /* owner died / expired */
           atomic {
             assert(waiting > 0);              /* the clamp never acts */
             waiting--;
             inwait[me] = 0
           };
           break
        :: !died && !expired -> skip           /* wait again */
        fi
     fi
  od;
  unlock();
  fin[me] = 1
  } unless { kill[me] -> die(me) }
}

/* Notify(n), condition.cc, the caller holding the lock. */
inline notify(n) {
  w = waiting;
  k = (w < n -> w : n);
  cap = cap + (nwaiting < n -> nwaiting : n);
#ifdef BREAK_NO_WAITING_CHECK
  k = n; w = w + k;                            /* waiting left as it is */
#endif
  if
  :: k == 0 ->
#ifndef BREAK_NO_COMPLETION
     if                                        /* complete a dead */
     :: signals != 0 && sleepers != 0 ->       /* notifier's wake */
        atomic { wake(2) }
     :: else -> skip
     fi;
#endif
     goto done
  :: else -> skip
  fi;
#ifndef BREAK_GRANT_BEFORE_BUMP
#ifndef BREAK_SLEEPERS_FIRST
  atomic { seq++; begun++ };                   /* bump, seq_cst RMW */
  /* MP_FAULT_POINT("condition.notify.after_bump") */
#endif
#endif
#ifndef BREAK_SPLIT_GRANT
  atomic {                                     /* the grant: one store */
    waiting = w - k; signals = signals + k; grants = grants + k;
    assert(waiting <= NW && signals <= NW)
  };
#else
  waiting = w - k;
  atomic { signals = signals + k; grants = grants + k };
#endif
  /* MP_FAULT_POINT("condition.notify.after_signal") */
#ifdef BREAK_GRANT_BEFORE_BUMP
  atomic { seq++; begun++ };
#endif
#ifndef BREAK_SLEEPERS_FIRST
  if
  :: sleepers != 0 -> atomic { wake(signals) } /* FutexWake(s + k) */
  :: else -> skip
  fi;
#else
  if
  :: sleepers == 0 -> atomic { seq++; begun++ }
  :: else -> atomic { seq++; begun++ }; atomic { wake(k) }
  fi;
#endif
done:
  skip
}

proctype Notifier() {
  byte w, k, i;
  bool died;
  {
  do
  :: i < NOTIFIES ->
     lock(NOTIFIER, died);
     notify(1);
     unlock();
     i++
  :: else -> break
  od;
  fin[NOTIFIER] = 1
  } unless { kill[NOTIFIER] -> die(NOTIFIER) }
}

/* A healthy NotifyAll() after the first notifier finished or died. */
proctype Later() {
  byte w, k;
  bool died;
  ended(NOTIFIER);
  lock(LATER, died);
  notify(NW);
  unlock();
  fin[LATER] = 1
}

active proctype Killer() {
  byte i;
  do
  :: kills < KILLS ->
     atomic {
       if
       :: i = 1
       :: i = 2
       :: i = NOTIFIER
       fi;
       if
       :: !kill[i] && !ended(i) -> kill[i] = 1; kills++
       :: else -> skip
       fi
     }
  :: break
  od
}

init {
  atomic {
    run Waiter(1); run Waiter(2); run Notifier();
    if :: LATE -> run Later() :: else -> skip fi
  }
}

#define owed(i) (inwait[i] && signals > 0 && grants > g_entry[i])
ltl signal_taken {
  [] ((owed(1) -> <> (!inwait[1] || signals == 0)) &&
      (owed(2) -> <> (!inwait[2] || signals == 0)))
}
/* Without kills: every granted signal is eventually consumed. */
ltl signals_consumed { [] (grants > returned -> <> (grants == returned)) }
