// mp/core/truncation_guard.h
// -----------------------------------------------------------------------------
// Survives the truncation of a mapped segment's file by another process.
//
// When the file behind a MAP_SHARED mapping is truncated (ftruncate by anyone
// allowed to write it), its pages past the new end vanish from every
// mapping, and the next access to them raises SIGBUS, which kills the
// process. SharedMemory registers every named segment it maps here. The
// first registration installs a SIGBUS handler that, for a fault inside a
// registered mapping, maps private zero-filled pages over the mapping from
// the faulting page to its end (mmap MAP_FIXED), marks the mapping
// truncated, and returns: the faulting instruction runs again and reads
// zeros. The segment's users (the queue's waits and operations) see the
// mark and report DataLoss: nothing they read afterwards is shared with
// anyone, and nothing they write reaches anyone.
//
// A SIGBUS outside every registered mapping goes to the handler that was
// installed before ours (the default one, which kills the process, unless
// the program installed its own). A handler the program installs after the
// first named segment was mapped replaces ours: then a truncation kills as
// it did without mp. At most kSlots mappings are watched at once; further
// ones are not (Watch returns kNotWatched).

#ifndef MP_CORE_TRUNCATION_GUARD_H_
#define MP_CORE_TRUNCATION_GUARD_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace mp::truncation_guard {

inline constexpr int kSlots = 256;
inline constexpr int kNotWatched = -1;

// Watches [addr, addr + size), a MAP_SHARED mapping of a file. Returns the
// slot to pass to Unwatch and Flag, or kNotWatched when every slot is taken
// or the handler could not be installed.
int Watch(void* addr, size_t size);
// Stops watching (before the mapping is unmapped). kNotWatched: no-op.
void Unwatch(int slot);
// The slot's mark: non-zero once a truncation was caught in the mapping.
// For kNotWatched, a mark that is never set. Valid while the slot is
// watched (the pointer stays valid for ever).
const std::atomic<uint32_t>* Flag(int slot);

}  // namespace mp::truncation_guard

#endif  // MP_CORE_TRUNCATION_GUARD_H_
