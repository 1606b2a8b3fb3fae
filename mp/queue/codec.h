// mp/queue/codec.h
// -----------------------------------------------------------------------------
// The codec moved to its own package, mp/codec/codec.h (DESIGN.md
// "Messages"); this header stays so that existing includes keep working.

#ifndef MP_QUEUE_CODEC_H_
#define MP_QUEUE_CODEC_H_

#include "mp/codec/codec.h"

#endif  // MP_QUEUE_CODEC_H_
