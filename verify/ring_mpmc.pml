/* verify/ring_mpmc.pml
 * -----------------------------------------------------------------------------
 * Model of the kMpmc producer side of mp's ring and the consumer's handling
 * of claims (mp/queue/internal/ring.cc: PidLock::Lock/Unlock, PushLocked,
 * PopLocked, SkipDeadClaim) with two producers that push PER records each
 * through a ring of CAP slots, one consumer, and a killer that may SIGKILL
 * one producer at any step. It checks the crash-safety claims of ring.h
 * ("Claim, write, commit" and "Crash safety"): a record is delivered only
 * once committed and whole, never one left from an earlier lap; the next
 * producer takes the PidLock over from a dead holder; a claim published by
 * a producer that died before committing it is skipped by the consumer and
 * counted in `lost_` exactly once; nobody waits for ever.
 *
 * PidLock: the word (holder, 0: free), the waiters flag and the epoch.
 * Unlock stores 0, then reads the flag (store, fence, load; LightFence) and,
 * if it was up, clears it, bumps the epoch and wakes one sleeper. A waiter
 * reads the epoch, raises the flag, fences (HeavyFence), reads the word
 * again and, if it still names the holder it saw, sleeps on the epoch while
 * the epoch is the value it read; the fence pair makes these steps
 * sequentially consistent, as Promela's are. FutexWait returns on a wake,
 * or by the timeout of its 20 ms slice; only a timeout with the holder dead
 * is modelled (after it the dead holder is taken over by CAS), so a wake
 * lost while the holder lives is a sleeper that never returns: an invalid
 * end state. A waiter that gets the lock after sleeping raises the flag
 * again for those it may have left asleep. A PidLock is not robust: the
 * kernel does nothing for it when its holder dies.
 *
 * The record header is one 64-bit word, stored whole (a claim naming its
 * producer, or a commit carrying its position and kind): here hdr_tag (the
 * committed position + 1; 0 for a claim), hdr_kind and hdr_tid, changed
 * together in one atomic step. Slots are fixed (one record = one slot), so
 * the C++'s zeroed word after each record, which keeps stale payload bytes
 * from passing for a header, has no counterpart: a slot here only ever holds
 * a header; the previous lap's header is modelled, and its tag must not
 * pass (BREAK_NO_TAG).
 *
 * Abstractions: the sleep/wake paths on the epochs are verified in ring.pml;
 * here the consumer's waits are blocking guards, and its liveness check of
 * a claimer may happen at any time (the 20 ms slice is not modelled, so the
 * check is exercised at every interleaving). A producer that finds the ring
 * full waits for space as a blocking guard. The spin loop of PidLock::Lock
 * is abstracted by the retry loop.
 *
 * Ghosts: `owed` counts the claims whose producer died before committing
 * them (what an exact count reports); the check is `lost == owed`.
 *
 * Broken twins (spin -D...):
 *   BREAK_EARLY_COMMIT  the commit is stored before the payload is written
 *   BREAK_NO_TAG        the consumer takes any committed header, whatever
 *                       its position (a header from the previous lap)
 *   BREAK_NO_TAKEOVER   a waiter never takes over a dead holder
 *   BREAK_NO_SKIP       the consumer never skips a dead producer's claim
 *   BREAK_SKIP_UNCLAIMED the consumer skips the header at head without
 *                       checking that tail is past it (a claim the dead
 *                       holder never published, overwritten by the next)
 *   BREAK_UNLOCK_LOAD_FIRST Unlock reads the waiters flag before its store
 *                       of 0 (what a missing fence allows: x86 lets the load
 *                       pass the store)
 *   BREAK_SLEEP_ON_WORD waiters sleep on the word (while it names the holder
 *                       they saw) instead of the epoch: the holder may have
 *                       unlocked, woken nobody yet asleep and locked again
 * -------------------------------------------------------------------------- */

#ifndef CAP
#define CAP 2
#endif
#ifndef PER
#define PER 2
#endif
#ifndef KILLS
#define KILLS 1
#endif

#define NO   0
#define YES  1
#define DEAD 2   /* Acquired::kFromDeadHolder */

#define DATA 1
#define LOST 3

/* PidLock producer_lock_ */
byte holder;               /* the word: holder (producer 1 or 2; 0 free) */
bool lw;                   /* the waiters flag */
byte lepoch;               /* the epoch */
bool l_asleep[3];          /* in the futex queue of the PidLock word */

byte tail;                 /* claimed records (monotonic) */
byte head;
byte lost;                 /* lost_ */

/* the record headers */
byte hdr_tag[CAP];         /* committed: position + 1; 0: a claim */
byte hdr_kind[CAP];        /* DATA or LOST when committed */
byte hdr_tid[CAP];         /* the claimer, for a claim */

bool kill[3], dead[3], fin[3];
byte kills;

/* Ghosts */
byte slot_id[CAP];         /* record in the slot: producer * 8 + k */
bool slot_done[CAP];       /* payload completely written */
byte committed;            /* data commits */
byte delivered;
bool claimed_open[3];      /* between the claim's tail store and the commit */
byte owed;                 /* claims whose producer died uncommitted */

inline wake_one() {        /* FutexWakeOne(&word) */
  if
  :: l_asleep[1] -> l_asleep[1] = 0
  :: l_asleep[2] -> l_asleep[2] = 0
  :: else -> skip
  fi
}

inline unlock() {          /* PidLock::Unlock */
#ifdef BREAK_UNLOCK_LOAD_FIRST
  old_w = lw;
  holder = 0;
#else
  holder = 0;                                  /* store 0, release */
  old_w = lw;                                  /* LightFence; load the flag */
#endif
  if
  :: old_w ->
     atomic {                                  /* exchange(0) != 0: wake */
       if
       :: lw -> lw = 0; lepoch++; wake_one()
       :: else -> skip
       fi
     }
  :: else -> skip
  fi
}

proctype Producer(byte me) {
  byte k = 1;
  byte res, vh, t, e;
  bool slept, timedout, old_w;
  {
  do
  :: k <= PER ->
relock:
     /* ---- PidLock::Lock ---- */
     slept = 0;
     atomic {                                  /* CAS 0 -> me */
       if
       :: holder == 0 -> holder = me; res = YES
       :: else -> res = NO
       fi
     }
     do
     :: res != NO -> break
     :: else ->
        vh = holder;
        if
        :: vh == 0 ->                          /* free: CAS it */
           atomic {
             if
             :: holder == 0 -> holder = me; res = YES
             :: else -> skip
             fi
           }
        :: else ->
           e = lepoch;                         /* epoch, acquire */
           lw = 1;                             /* raise; HeavyFence */
           if
           :: holder != vh -> skip             /* changed: look again */
           :: else ->
              /* FutexWait(&epoch, e, 20 ms slice) */
              atomic {
                if
#ifdef BREAK_SLEEP_ON_WORD
                :: holder == vh -> l_asleep[me] = 1
#else
                :: lepoch == e -> l_asleep[me] = 1
#endif
                :: else -> skip
                fi
              }
              if
              :: !l_asleep[me] -> timedout = 0
              :: atomic { l_asleep[me] && dead[vh] ->
                          l_asleep[me] = 0; timedout = 1 }
              fi;
              slept = 1;
#ifndef BREAK_NO_TAKEOVER
              if
              :: timedout ->                   /* TaskIsDead(holder) */
                 atomic {
                   if
                   :: holder == vh -> holder = me; res = DEAD
                   :: else -> skip
                   fi
                 }
              :: else -> skip
              fi
#endif
           fi
        fi
     od;
     if
     :: slept -> lw = 1                        /* for those left asleep */
     :: else -> skip
     fi;
     /* ---- PushLocked: the claim, under the lock ---- */
     t = tail;
     if
     :: t + 1 - head > CAP ->                  /* full */
        unlock();
        tail + 1 - head <= CAP;                /* WaitForSpace */
        goto relock
     :: else -> skip
     fi;
     atomic {                                  /* header = Claim(me, n) */
       hdr_tag[t % CAP] = 0; hdr_tid[t % CAP] = me;
       slot_done[t % CAP] = 0; slot_id[t % CAP] = me * 8 + k
     }
     atomic { tail = t + 1; claimed_open[me] = 1 }  /* tail_.store, release */
     unlock();
     /* ---- outside the lock: payload, then commit ---- */
#ifdef BREAK_EARLY_COMMIT
     atomic {
       hdr_tag[t % CAP] = t + 1; hdr_kind[t % CAP] = DATA;
       committed++; claimed_open[me] = 0
     }
#endif
     slot_done[t % CAP] = 1;                   /* memcpy done */
#ifndef BREAK_EARLY_COMMIT
     atomic {                                  /* the commit, release */
       hdr_tag[t % CAP] = t + 1; hdr_kind[t % CAP] = DATA;
       committed++; claimed_open[me] = 0
     }
#endif
     /* WakeConsumers: see ring.pml */
     k++
  :: else -> break
  od;
  fin[me] = 1
  } unless {
    kill[me] ->
    atomic {                                   /* exit: no robust cleanup */
      dead[me] = 1; l_asleep[me] = 0;
      if
      :: claimed_open[me] -> owed++; claimed_open[me] = 0
      :: else -> skip
      fi
    }
  }
}

active proctype Consumer() {
  byte h, id, t, who;
  byte last[3];
  do
  :: atomic {
#ifdef BREAK_NO_TAG
       hdr_tag[head % CAP] != 0 ->
#else
       hdr_tag[head % CAP] == head + 1 ->      /* IsCommittedAt(w, head) */
#endif
       h = head
     };
     if
     :: hdr_kind[h % CAP] == DATA ->
        atomic {                               /* the sink copies it out */
          assert(slot_done[h % CAP]);          /* never a partial record */
          id = slot_id[h % CAP];
          assert(id % 8 == last[id / 8] + 1);  /* per-producer FIFO, no
                                                  duplicate, no gap */
          last[id / 8] = id % 8
        }
        assert(slot_done[h % CAP] && slot_id[h % CAP] == id);
        delivered++
     :: else -> skip                           /* a lost record: skipped */
     fi;
     head = h + 1
  :: atomic {                                  /* not committed: a claim */
       hdr_tag[head % CAP] == 0 && dead[hdr_tid[head % CAP]] ->
       h = head
     };
#ifndef BREAK_NO_SKIP
     t = tail;                                 /* tail, then the header */
     if
#ifdef BREAK_SKIP_UNCLAIMED
     :: true ->
#else
     :: t != h ->
#endif
        atomic {                               /* SkipDeadClaim: CAS */
          who = hdr_tid[h % CAP];
          if
          :: hdr_tag[h % CAP] == 0 && dead[who] ->
             hdr_tag[h % CAP] = h + 1; hdr_kind[h % CAP] = LOST; lost++
          :: else -> skip
          fi
        }
     :: else -> skip
     fi
#else
     skip
#endif
  :: atomic {
       tail == head && (fin[1] || dead[1]) && (fin[2] || dead[2])
     } -> break
  od;
  assert(delivered == committed);
  /* every published claim is delivered or counted, once */
  assert(lost == owed)
}

active proctype Killer() {
  do
  :: atomic { kills < KILLS && !kill[1] && !fin[1] -> kill[1] = 1; kills++ }
  :: atomic { kills < KILLS && !kill[2] && !fin[2] -> kill[2] = 1; kills++ }
  :: break
  od
}

init {
  atomic { run Producer(1); run Producer(2) }
}

/* Liveness (pan -a -f, weak fairness): every producer finishes or dies, so
   a dead holder never blocks the others for ever, and the consumer gets
   past every claim: every record committed is delivered. */
ltl all_finish {
  <> ((fin[1] || dead[1]) && (fin[2] || dead[2]) && tail == head &&
      delivered == committed)
}
