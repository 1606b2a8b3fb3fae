/* verify/condition.pml
 * -----------------------------------------------------------------------------
 * Model of mp::ResidentCondition (mp/sync/condition.cc: SleepWhile, WaitImpl,
 * Notify) with NW waiters that each Wait once and a notifier that calls
 * Notify(1) NOTIFIES times, all under the condition's lock. The lock itself
 * is verified in lock.pml: here it is an atomic test-and-set (`lk`), and
 * deadlines are infinite (no timeouts), no kills.
 *
 * seq_ is the futex word; FUTEX_WAIT(seq_, s): atomically { if seq_ != s
 * return; else enqueue }, then block until FutexWake dequeues us.
 *
 * Properties:
 *   no stored wake-up  a Wait returns only for a Notify issued after it began
 *                      waiting, and Notify(1) calls made while nobody waits
 *                      wake nobody: returns <= Notify calls made while
 *                      someone waited (assertions);
 *   no lost wake-up    every signal granted by Notify is consumed by a waiter
 *                      (no invalid end state; LTL `signals_consumed`).
 *
 * Notify makes the FUTEX_WAKE only when `sleepers` says a waiter may be in
 * (or entering) FUTEX_WAIT: a waiter increments it before FUTEX_WAIT and
 * decrements it after; Notify bumps seq_ before it reads `sleepers`.
 *
 * Broken twins (spin -D...):
 *   BREAK_SLEEPERS_FIRST     Notify reads `sleepers` before bumping seq_
 *                            (a waiter announcing itself in between sleeps
 *                            through the notify)
 *   BREAK_SEQ_AFTER_RELEASE  Wait reads seq_ after releasing the lock
 *                            (condition.cc:29 moved below :30)
 *   BREAK_NO_WAITING_CHECK   Notify grants n signals without looking at
 *                            waiting_ (condition.cc:64-66 dropped)
 * -------------------------------------------------------------------------- */

#ifndef NW
#define NW 2
#endif
#ifndef NOTIFIES
#define NOTIFIES 2
#endif

bool lk;                   /* the condition's lock (lock.pml) */
byte seq;                  /* condition.h seq_ (futex word) */
byte waiting;              /* waiting_ */
byte signals;              /* signals_ */
bool asleep[NW + 1];
byte sleepers;             /* sleepers_ */

/* ghosts */
byte notifies;             /* Notify calls made so far */
byte granted;              /* signals granted by Notify */
byte returned;             /* Waits returned */
byte inwait;               /* waiters between Wait's entry and return */
byte eff;                  /* Notify calls made while someone waited */

inline lock()   { atomic { !lk -> lk = 1 } }
inline unlock() { lk = 0 }

proctype Waiter(byte me) {
  byte s, entered, sig;
  lock();
  entered = notifies;                          /* ghost */
  waiting++;                                   /* condition.cc:27 */
  inwait++;
  do
  ::
#ifndef BREAK_SEQ_AFTER_RELEASE
     s = seq;                                  /* condition.cc:29 */
     unlock();                                 /* condition.cc:30 release */
#else
     unlock();
     s = seq;
#endif
     /* condition.cc:31 SleepWhile (8-19); the spin loop 9-12 only re-reads
        seq_, abstracted into the loop below */
     do
     :: seq != s -> break                      /* condition.cc:14 */
     :: else ->
        sleepers++;                            /* SleepWhile: announce */
        atomic {                               /* FutexWait(seq_, s) */
          if
          :: seq == s -> asleep[me] = 1
          :: else -> skip
          fi;
          !asleep[me]
        };
        sleepers--
     od;
     lock();                                   /* condition.cc:32 reacquire */
     sig = signals;                            /* condition.cc:34 */
     if
     :: sig > 0 ->
        signals = sig - 1;                     /* condition.cc:36 */
        returned++; inwait--;
        assert(returned <= granted && returned <= eff);
        assert(entered < notifies);            /* no stored wake-up */
        break                                  /* condition.cc:37 */
     :: else -> skip                           /* condition.cc:39: no
                                                  deadline: loop */
     fi
  od;
  unlock()
}

active proctype Notifier() {
  byte w, k;
  do
  :: notifies < NOTIFIES ->
     lock();
     notifies++;
     if :: inwait > 0 -> eff++ :: else -> skip fi;
     /* Notify(1), condition.cc:62-71 */
     w = waiting;                              /* condition.cc:64 */
#ifndef BREAK_NO_WAITING_CHECK
     k = (w < 1 -> w : 1);                     /* condition.cc:65 */
     if
     :: k == 0 -> goto done                    /* condition.cc:66 */
     :: else -> skip
     fi;
     waiting = w - k;                          /* condition.cc:67 */
#else
     k = 1;
#endif
     signals = signals + k;                    /* condition.cc:68 */
     granted = granted + k;
#ifndef BREAK_SLEEPERS_FIRST
     seq++;                                    /* Notify: bump seq_, */
     if                                        /* then read sleepers_ */
     :: sleepers == 0 -> goto done
     :: else -> skip
     fi;
#else
     if
     :: sleepers == 0 -> seq++; goto done
     :: else -> seq++
     fi;
#endif
     atomic {                                  /* FutexWake(k) */
       if
       :: asleep[1] -> asleep[1] = 0
       :: asleep[2] -> asleep[2] = 0
       :: else -> skip
       fi
     }
done:
     unlock()
  :: else -> break
  od
}

init {
  atomic { run Waiter(1); run Waiter(2) }
}

/* Every granted signal is eventually consumed by a waiter. */
ltl signals_consumed { [] (granted > returned -> <> (granted == returned)) }
