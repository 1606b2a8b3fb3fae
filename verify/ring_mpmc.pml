/* verify/ring_mpmc.pml
 * -----------------------------------------------------------------------------
 * Model of the kMpmc producer side of mp's ring (mp/queue/internal/ring.cc:
 * PidLock::Lock/Unlock 71-124, PushLocked 272-331) with two producers that
 * push PER records each through a ring of CAP slots, one consumer, and a
 * killer that may SIGKILL one producer at any step. It checks the crash
 * safety claims of ring.h:40-55: a killed producer's partial record is never
 * delivered, the next producer takes the PidLock over from the dead holder,
 * and the lost record is counted in `lost_` exactly once.
 *
 * PidLock word (ring.cc:80-81): holder (0: free) | WAITERS. Waiters sleep in
 * slices (ring.cc:105-106): FutexWait may return on a wake or, at any time,
 * by timeout; after a timeout a dead holder (TaskIsDead, ring.cc:108) is
 * taken over by CAS (ring.cc:109-112). A PidLock word is not robust: the
 * kernel does nothing for it when its holder dies.
 *
 * Abstractions: the consumer side and both sleep/wake paths on the epochs are
 * verified in ring.pml; here the consumer pops whenever tail != head (one
 * consumer: no consumer_lock) and a producer that finds the ring full waits
 * for space as a blocking guard (WaitForSpace, ring.cc:300). The spin loop
 * ring.cc:78-86 is abstracted by the retry loop.
 *
 * The in-flight marker is `pending_end` (ring.h): where tail will be once the
 * record is published. The new holder counts a loss iff the marker is set
 * and tail never reached it, so a producer killed between its tail store and
 * clearing the marker (fault point ring.put.after_publish) is no loss. The
 * ghost `owed` counts exactly the records whose writer died before
 * publishing them, and the check is `lost == owed`. (Until the fault-point
 * driver found it, the marker was a flag and that window was miscounted;
 * BREAK_PENDING_FLAG keeps that version and must fail.)
 *
 * Broken twins (spin -D...):
 *   BREAK_EARLY_TAIL    tail stored before the payload is written
 *   BREAK_NO_TAKEOVER   a waiter never takes over a dead holder (ring.cc:107-115
 *                       without the TaskIsDead branch)
 *   BREAK_NO_LOST_COUNT the new holder ignores pending_end
 *                       (the kFromDeadHolder branch of PushLocked dropped)
 *   BREAK_PENDING_FLAG  the new holder counts a loss whenever the marker is
 *                       set, as the flag did (publish-then-die miscounted)
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

/* PidLock producer_lock_ (ring.h:191) */
byte holder;               /* bits 30..0: holder (producer 1 or 2; 0 free) */
bool lw;                   /* bit 31: waiters */
bool l_asleep[3];          /* in the futex queue of the PidLock word */

byte tail;                 /* ring.h:189 (records) */
byte head;                 /* ring.h:196 */
byte pending_end;          /* ring.h pending_end_ (records; 0: none) */
byte lost;                 /* ring.h:210 lost_ */

bool kill[3], dead[3], fin[3];
byte kills;

/* Ghosts */
byte slot_id[CAP];         /* record in the slot: producer * 8 + k */
bool slot_done[CAP];       /* payload completely written */
byte published;            /* tail stores */
byte delivered;
bool writing[3];           /* between ring.cc:318 and the tail store */
bool window[3];            /* between the tail store and clearing pending_end */
bool lost_rec[3];          /* died with a partial record */
byte owed;                 /* losses an exact count would report */

inline wake_one() {        /* FutexWakeOne(&word) */
  if
  :: l_asleep[1] -> l_asleep[1] = 0
  :: l_asleep[2] -> l_asleep[2] = 0
  :: else -> skip
  fi
}

proctype Producer(byte me) {
  byte k = 1;
  byte res, vh, t;
  bool vw, timedout, old_w;
  {
  do
  :: k <= PER ->
relock:
     /* ---- PidLock::Lock, ring.cc:71 ---- */
     atomic {                                  /* ring.cc:74 CAS 0 -> me */
       if
       :: holder == 0 && !lw -> holder = me; res = YES
       :: else -> res = NO
       fi
     }
     do
     :: res != NO -> break
     :: else ->
        atomic { vh = holder; vw = lw }        /* ring.cc:88 */
        if
        :: vh == 0 ->                          /* ring.cc:89-96 */
           atomic {
             if
             :: holder == vh && lw == vw -> holder = me; lw = 1; res = YES
             :: else -> skip
             fi
           }
        :: else ->
           if
           :: !vw ->                           /* ring.cc:98-104 */
              atomic {
                if
                :: holder == vh && lw == vw -> lw = 1; vw = 1
                :: else -> skip                /* continue */
                fi
              }
           :: else -> skip
           fi;
           if
           :: vw ->
              /* ring.cc:105-106 FutexWait(&word, v, 20 ms slice) */
              atomic {
                if
                :: holder == vh && lw -> l_asleep[me] = 1
                :: else -> skip
                fi;
                if
                :: !l_asleep[me] -> timedout = 0
                :: l_asleep[me] -> l_asleep[me] = 0; timedout = 1
                fi
              }
#ifndef BREAK_NO_TAKEOVER
              if
              :: timedout && dead[vh] ->       /* ring.cc:107-108 */
                 atomic {                      /* ring.cc:109-112 */
                   if
                   :: holder == vh && lw == vw ->
                      holder = me; lw = 1; res = DEAD;
                      if                       /* ghost: what is owed */
                      :: lost_rec[vh] -> owed++
                      :: else -> skip
                      fi
                   :: else -> skip             /* ring.cc:114 continue */
                   fi
                 }
              :: else -> skip                  /* ring.cc:116: no deadline */
              fi
#endif
           :: else -> skip
           fi
        fi
     od;
     /* ---- PushLocked, ring.cc:281-285 ---- */
#ifndef BREAK_NO_LOST_COUNT
     if
     :: res == DEAD ->
        if
#ifdef BREAK_PENDING_FLAG
        :: pending_end != 0 ->
#else
        :: pending_end != 0 && tail < pending_end ->
#endif
           lost++                              /* PushLocked: lost_ += 1 */
        :: else -> skip
        fi;
        pending_end = 0
     :: else -> skip
     fi;
#endif
     t = tail;                                 /* ring.cc:288 */
     if
     :: t + 1 - head > CAP ->                  /* ring.cc:293-295 full */
        atomic {                               /* ring.cc:296 Unlock */
          old_w = lw; holder = 0; lw = 0
        }
        if
        :: old_w -> atomic { wake_one() }
        :: else -> skip
        fi;
        tail + 1 - head <= CAP;                /* ring.cc:300 WaitForSpace */
        goto relock                            /* ring.cc:306 */
     :: else -> skip
     fi;
     atomic { pending_end = t + 1; writing[me] = 1 }    /* pending_end_ = tail + rec */
#ifdef BREAK_EARLY_TAIL
     atomic { tail = t + 1; published++; writing[me] = 0; window[me] = 1 }
#endif
     atomic {                                  /* ring.cc:319-321 */
       slot_done[t % CAP] = 0; slot_id[t % CAP] = me * 8 + k
     }
     slot_done[t % CAP] = 1;                   /* memcpy done */
#ifndef BREAK_EARLY_TAIL
     atomic {                                  /* ring.cc:324 release */
       tail = t + 1; published++; writing[me] = 0; window[me] = 1
     }
#endif
     atomic { pending_end = 0; window[me] = 0 }         /* pending_end_ = 0 */
     atomic {                                  /* ring.cc:326 Unlock */
       old_w = lw; holder = 0; lw = 0
     }
     if
     :: old_w -> atomic { wake_one() }
     :: else -> skip
     fi;
     /* ring.cc:327 WakeConsumers: see ring.pml */
     k++
  :: else -> break
  od;
  fin[me] = 1
  } unless {
    kill[me] ->
    atomic {                                   /* exit: no robust cleanup */
      dead[me] = 1; l_asleep[me] = 0;
      lost_rec[me] = writing[me]   /* died before publishing */
    }
  }
}

active proctype Consumer() {
  byte h, id;
  byte last[3];
  do
  :: tail != head ->                           /* ring.cc:349-351 */
     h = head;
     atomic {                                  /* ring.cc:365-381 */
       assert(slot_done[h % CAP]);             /* never a partial record */
       id = slot_id[h % CAP];
       assert(id % 8 == last[id / 8] + 1);     /* per-producer FIFO, no
                                                  duplicate, no gap */
       last[id / 8] = id % 8
     }
     assert(slot_done[h % CAP] && slot_id[h % CAP] == id);
     delivered++;
     head = h + 1                              /* ring.cc:388 */
  :: tail == head && (fin[1] || dead[1]) && (fin[2] || dead[2]) -> break
  od;
  assert(delivered == published);
  /* the dead producer's loss is counted exactly once once a live producer
     has taken the lock over, and a published record never */
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
   a dead holder never blocks the others for ever, and every published
   record is delivered. */
ltl all_finish {
  <> ((fin[1] || dead[1]) && (fin[2] || dead[2]) && delivered == published)
}
