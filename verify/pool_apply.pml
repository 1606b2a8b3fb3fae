/* verify/pool_apply.pml: a synchronous Apply that takes the handler's role
 * (mp/pool/pool.cc: PoolCore::ApplyDirect, Run, Sleep, WakeFromParent;
 * WakeHandler in the worker), with another caller submitting at the same
 * time. The question is wake-ups: nobody may be left waiting for a handler
 * that sleeps.
 *
 * What the handler does is a role (role_mu_): the handler thread holds it
 * except while it sleeps. Sleep: read the epoch, raise both sleeping flags
 * (the workers' one in shared memory, the callers' one in the parent),
 * look for work (submissions, results), let the role go and wait for the
 * epoch to move; then take the role back and lower both flags. The futex
 * wait has no slice here (the C++ wakes every 20 ms): a missed wake-up
 * shows as a process blocked for ever (safety mode: an invalid end state).
 *
 * The Apply: try the role; with it, and nothing submitted, lower the
 * workers' flag (so the worker's answer does not wake the handler), put
 * its task in, and run passes (dispatch, collect) until its answer is in,
 * another caller submitted, or its spin ends (any time: a choice); give
 * the role back and, if its task is still out, wake the handler when the
 * callers' flag is up. Without the role: submit as any caller. Then wait
 * for its result.
 *
 * Another caller: submit (has_submissions_), then the callers' wake-up
 * (WakeFromParent: exchange the callers' flag, bump the epoch, wake), and
 * wait until the handler has taken its work.
 *
 * The worker: take a task, answer, then WakeHandler on the workers' flag.
 *
 * The full-fence handshakes of the C++ make these steps sequentially
 * consistent, as Promela is.
 *
 * Properties (safety mode): nobody blocks for ever; the Apply's answer is
 * collected exactly once; the role has one holder at a time.
 *
 * Broken twins:
 *   BREAK_NO_HANDOVER_WAKE    the Apply gives the role back with its task
 *                             out and wakes nobody: the worker's answer
 *                             finds the workers' flag down, and the Apply
 *                             waits for ever.
 *   BREAK_CALLERS_USE_WORKERS_FLAG  callers wake the handler by the
 *                             workers' flag, which the Apply put down: a
 *                             submission made meanwhile is never taken.
 */

byte role;        /* 0 free, 1 the handler thread, 2 the Apply */
bit parked;       /* PoolCore::parked_, the callers' flag */
bit sleeping;     /* Control::handler_sleeping, the workers' flag */
byte epoch;       /* Control::epoch, the handler's futex word */
bit has_sub;      /* has_submissions_ */
bit other_sub;    /* the other caller's work, submitted, not taken */
bit other_done;   /* ... taken by the handler */
/* the Apply's one task */
bit a_sub;        /* submitted the usual way (no role) */
bit a_pending;    /* in pending_ */
bit a_in_ring;    /* in the worker's task ring */
bit a_result;     /* its answer in the result ring */
bit a_done;       /* collected: the result is ready */

/* One pass's dispatch and collect, by the role's holder. */
inline pass(progress) {
  atomic {
    if
    :: a_pending -> a_pending = 0; a_in_ring = 1; progress = 1
    :: else -> skip
    fi
  };
  atomic {
    if
    :: a_result -> a_result = 0; assert(!a_done); a_done = 1; progress = 1
    :: else -> skip
    fi
  }
}

active proctype Handler() {
  bit progress;
  byte e;
  atomic { role == 0 -> role = 1 };
end_run:
  do
  :: progress = 0;
     assert(role == 1);
     atomic {  /* the swap of submissions, under mu_ */
       if
       :: has_sub ->
          has_sub = 0;
          if :: other_sub -> other_sub = 0; other_done = 1 :: else -> skip fi;
          if :: a_sub -> a_sub = 0; a_pending = 1 :: else -> skip fi;
          progress = 1
       :: else -> skip
       fi
     };
     pass(progress);
     if
     :: progress -> skip
     :: else ->  /* Sleep */
        e = epoch;
        sleeping = 1;
        parked = 1;
        if
        :: !has_sub && !a_result ->
           role = 0;
end_sleep: epoch != e;
           atomic { role == 0 -> role = 1 }
        :: else -> skip
        fi;
        sleeping = 0;
        parked = 0
     fi
  od
}

active proctype Worker() {
end_idle:
  do
  :: atomic { a_in_ring -> a_in_ring = 0 };
     a_result = 1;
     /* WakeHandler */
     if
     :: atomic { sleeping == 1 -> sleeping = 0 }; epoch++
     :: else -> skip
     fi
  od
}

inline wake_from_parent() {
#ifndef BREAK_CALLERS_USE_WORKERS_FLAG
  if
  :: atomic { parked == 1 -> parked = 0 }; epoch++
  :: else -> skip
  fi
#else
  if
  :: atomic { sleeping == 1 -> sleeping = 0 }; epoch++
  :: else -> skip
  fi
#endif
}

active proctype Apply() {
  bit got;
  bit progress;
  bit left;
  atomic {  /* try_lock */
    if
    :: role == 0 -> role = 2; got = 1
    :: else -> got = 0
    fi
  };
  if
  :: got && has_sub -> role = 0; got = 0  /* not idle: the usual way */
  :: else -> skip
  fi;
  if
  :: got ->
     if :: sleeping == 1 -> sleeping = 0 :: else -> skip fi;
     a_pending = 1;
     do
     :: assert(role == 2);
        progress = 0;
        pass(progress);
        if
        :: a_done -> break
        :: has_sub -> break
        :: true -> break  /* the spin's end */
        :: true -> skip
        fi
     od;
     left = !a_done;
     role = 0;
#ifndef BREAK_NO_HANDOVER_WAKE
     if
     :: left -> wake_from_parent()
     :: else -> skip
     fi
#endif
  :: else ->  /* SubmitOne */
     atomic { a_sub = 1; has_sub = 1 };
     wake_from_parent()
  fi;
  a_done  /* Take(): waits for the result */
}

active proctype Other() {
  atomic { other_sub = 1; has_sub = 1 };
  wake_from_parent();
  other_done
}
