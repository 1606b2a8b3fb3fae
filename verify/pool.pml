/* verify/pool.pml: the Pool's task handoff (mp/pool/pool.cc) with a worker
 * killed at any step, and a replacement.
 *
 * One worker at a time (the pool's workers do not interact: each has its own
 * rings and slot, so one worker and its replacements is the whole protocol);
 * NTASKS tasks, a window of W, up to KILLS deaths. Rings are FIFOs whose push
 * and pop are atomic (what the ring guarantees: a record is committed whole
 * or, its producer dead, skipped as lost).
 *
 * Worker (WorkerMain): pop task t; slot = t (release store, before anything
 * runs); call (runs[t]++); push result t. A kill may land between any two
 * steps (`unless`).
 * Parent (PoolCore::Run / Collect / Reap): dispatch from `pending` while the
 * window has room; collect results in order (the front of the window);
 * once the worker is dead: drain its result ring, fail the window's task
 * named by the slot, put the others back at the front of `pending` in
 * order, start a replacement with fresh rings and slot.
 *
 * Properties: every task ends exactly once (result or failure); a task is
 * never run twice; a failed task ran at most once and never had a result
 * committed; a task with a result ran exactly once; the parent never blocks
 * (safety mode: no invalid end state).
 *
 * Broken twins:
 *   BREAK_SLOT_AFTER_CALL  the worker names the task after calling it: a
 *                          death in between re-runs a task that ran.
 *   BREAK_NO_DRAIN         the parent judges the window before draining the
 *                          dead worker's results: a completed task is failed.
 */

#ifndef NTASKS
#define NTASKS 3
#endif
#ifndef W
#define W 2
#endif
#ifndef KILLS
#define KILLS 2
#endif
#define RING 4

byte runs[NTASKS + 1];
bool committed[NTASKS + 1];
byte outcome[NTASKS + 1];   /* 0 open, 1 result, 2 failed */
byte slot;                  /* WorkerSlot::running (0: none) */
bool dead;                  /* the worker has exited (waitpid) */
bool kill_now;              /* the killer's SIGKILL */
byte kills;

/* rings of the current worker */
byte tring[RING]; byte thead; byte ttail;
byte rring[RING]; byte rhead; byte rtail;

/* the parent's side */
byte pending[NTASKS]; byte npending;
byte window[W]; byte nwindow;
byte ended;

proctype Worker() {
  byte t;
end_idle:
  do
  :: atomic { thead != ttail -> t = tring[thead % RING]; thead++ }  /* Get */
#ifndef BREAK_SLOT_AFTER_CALL
     slot = t;                                /* pool.cc: running.store */
     assert(runs[t] == 0); runs[t]++;         /* the call */
#else
     assert(runs[t] == 0); runs[t]++;
     slot = t;
#endif
     atomic { rring[rtail % RING] = t; rtail++; committed[t] = true }  /* Put */
  od unless { kill_now };
  atomic { kill_now = false; dead = true }
}

active proctype Killer() {
end_killer:
  do
  :: kills < KILLS && !dead && ended < NTASKS -> kill_now = true; kills++
  :: kills >= KILLS || ended == NTASKS -> break
  od
}

inline collect_one() {
  atomic {
    byte r = rring[rhead % RING]; rhead++;
    assert(nwindow > 0 && window[0] == r);
    assert(outcome[r] == 0 && runs[r] == 1);
    outcome[r] = 1; ended++;
    byte k = 0;
    do :: k + 1 < nwindow -> window[k] = window[k + 1]; k++ :: else -> break od;
    nwindow--
  }
}

active proctype Parent() {
  byte i, t;
  atomic {
    i = 0;
    do :: i < NTASKS -> pending[i] = i + 1; i++ :: else -> break od;
    npending = NTASKS;
    run Worker()
  }
  do
  :: ended == NTASKS -> break
  :: atomic { npending > 0 && nwindow < W ->                      /* Dispatch */
       t = pending[0];
       i = 0;
       do :: i + 1 < npending -> pending[i] = pending[i + 1]; i++ :: else -> break od;
       npending--;
       tring[ttail % RING] = t; ttail++;
       window[nwindow] = t; nwindow++ }
  :: rhead != rtail -> collect_one()                               /* Collect */
  :: dead ->                                                       /* Reap */
#ifndef BREAK_NO_DRAIN
     do :: rhead != rtail -> collect_one() :: else -> break od;
#endif
     atomic {
       /* the task the slot names fails; the rest go back, in order */
       byte back[W]; byte nback = 0;
       i = 0;
       do
       :: i < nwindow ->
          if
          :: window[i] == slot ->
             assert(outcome[slot] == 0 && runs[slot] <= 1 && !committed[slot]);
             outcome[slot] = 2; ended++
          :: else -> back[nback] = window[i]; nback++
          fi;
          i++
       :: else -> break
       od;
       /* pending = back ++ pending */
       i = npending;
       do :: i > 0 -> pending[i - 1 + nback] = pending[i - 1]; i-- :: else -> break od;
       i = 0;
       do :: i < nback -> pending[i] = back[i]; i++ :: else -> break od;
       npending = npending + nback;
       nwindow = 0;
       /* a replacement with fresh rings and slot */
       thead = 0; ttail = 0; rhead = 0; rtail = 0; slot = 0;
       dead = false;
       run Worker()
     }
  od;
  /* every task ended once; a result means it ran once; never twice */
  i = 1;
  do
  :: i <= NTASKS ->
     assert(outcome[i] != 0);
     assert(outcome[i] != 1 || runs[i] == 1);
     assert(runs[i] <= 1);
     i++
  :: else -> break
  od
}
