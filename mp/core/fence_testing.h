// mp/core/fence_testing.h
// -----------------------------------------------------------------------------
// Testing only (target //mp/core:fence_testing, testonly): puts the calling
// process on the fallback of mp/core/fence.h, as on a kernel without
// membarrier(2) or one that filters it. From then on, in this process,
// LightFence is a real seq_cst fence and HeavyFence returns false, so that
// its sleepers sleep in short slices and re-check. Other processes are not
// affected; a child forked later starts over (it registers on first use).
//
// Used by tests of the code above the fence (the ring's sleep/wake) to run
// the path every machine without membarrier takes.

#ifndef MP_CORE_FENCE_TESTING_H_
#define MP_CORE_FENCE_TESTING_H_

namespace mp::fence_testing {

void UseFallbackFence();

}  // namespace mp::fence_testing

#endif  // MP_CORE_FENCE_TESTING_H_
