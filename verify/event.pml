/* verify/event.pml
 * -----------------------------------------------------------------------------
 * Model of mp::ResidentEvent (mp/sync/event.cc: Set, Wait) with NW waiters
 * that each Wait once with no deadline, and a setter that calls Set() once
 * and may be killed (SIGKILL) at any step, as may one waiter (KILLS in all).
 *
 * The word (event.h, word_) is two fields changed together in one atomic
 * step, as the hardware changes the one 32-bit word: set (bit 0 SET) and
 * wt (bit 1 WAITERS).
 *
 * FUTEX_WAIT(word, v): atomically { if word != v return; else enqueue },
 * then sleep until FutexWakeAll dequeues us or, by default, until the slice
 * ends (event.cc Wait: SliceOf(deadline), kRobustSlice): the slice's end is
 * a choice the verifier may take at any moment while the process sleeps,
 * and weak fairness makes it happen eventually. No spurious wake-ups
 * otherwise. A killed process leaves the futex queue; the kernel does
 * nothing else for an event.
 *
 * Properties:
 *   waiters_return   once the flag is set, every waiter returns (or is
 *                    killed): LTL under weak fairness;
 *   returns_set      Wait returns only with the flag set (assertion).
 *
 * Broken twin (spin -D...):
 *   BREAK_UNSLICED_WAIT  Wait sleeps until woken (the code before the fix):
 *                        a setter killed between its exchange and its
 *                        FutexWakeAll leaves a waiter asleep for ever on a
 *                        set event (issue 16, hole 1).
 * -------------------------------------------------------------------------- */

#ifndef NW
#define NW 2
#endif
#ifndef KILLS
#define KILLS 1
#endif
#define SETTER (NW + 1)

bool set;                  /* event.h word_ bit 0 */
bool wt;                   /* word_ bit 1 */
bool asleep[NW + 1];
bool kill[SETTER + 1];
bool dead[SETTER + 1];
bool fin[SETTER + 1];
byte kills;

#define ended(i) (fin[i] || dead[i])

inline wake_all() {
  byte j = 1;
  do
  :: j <= NW -> asleep[j] = 0; j++
  :: else -> break
  od
}

proctype Waiter(byte me) {
  bool v_set, v_wt;
  {
  /* event.cc Wait: the spin phase, abstracted to one look */
  if
  :: set -> goto done
  :: else -> skip
  fi;
  do
  :: atomic { v_set = set; v_wt = wt };        /* load */
     if
     :: v_set -> break                         /* return true */
     :: else -> skip
     fi;
     if
     :: !v_wt ->                               /* CAS v -> v | WAITERS */
        atomic {
          if
          :: set == v_set && wt == v_wt -> wt = 1; v_wt = 1
          :: else -> goto retry                /* continue */
          fi
        }
     :: else -> skip
     fi;
     atomic {                                  /* FutexWait(word, v|W) */
       if
       :: set == v_set && wt == v_wt -> asleep[me] = 1
       :: else -> skip                         /* EAGAIN */
       fi
     };
#ifdef BREAK_UNSLICED_WAIT
     !asleep[me];                              /* until woken */
#else
     if
     :: !asleep[me]                            /* woken */
     :: asleep[me] -> asleep[me] = 0           /* the slice ended */
     fi;
#endif
retry:
     skip
  od;
done:
  assert(set);                                 /* returns_set */
  fin[me] = 1
  } unless { kill[me] -> atomic { asleep[me] = 0; dead[me] = 1 } }
}

proctype Setter() {
  bool old_wt;
  {
  atomic { old_wt = wt; set = 1; wt = 0 };     /* exchange(kSet) */
  /* MP_FAULT_POINT("event.set.after_exchange") */
  if
  :: old_wt -> atomic { wake_all() }           /* FutexWakeAll */
  :: else -> skip
  fi;
  fin[SETTER] = 1
  } unless { kill[SETTER] -> dead[SETTER] = 1 }
}

active proctype Killer() {
  byte i;
  do
  :: kills < KILLS ->
     atomic {
       if
       :: i = 1
       :: i = 2
       :: i = SETTER
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
  atomic { run Waiter(1); run Waiter(2); run Setter() }
}

/* Once the flag is set, every waiter eventually returns or dies. */
ltl waiters_return { [] (set -> <> (ended(1) && ended(2))) }
