// mp/core/segment_header.h: written by the creator, copied out and checked by
// a reader that trusts nothing else in the segment.

#include "mp/core/segment_header.h"

#include <unistd.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "mp/core/liveness.h"

namespace mp {
namespace {

TEST(SegmentHeaderTest, WrittenThenReadBack) {
  std::vector<uint64_t> seg(1024 / 8, 0);
  WriteSegmentHeader(seg.data(), SegmentKind::kQueue, 7, 2, TypeTag("int"), 4,
                     1024 - SegmentHeader::kSize);
  auto h = ReadSegmentHeader(seg.data(), 1024);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->kind, static_cast<uint32_t>(SegmentKind::kQueue));
  EXPECT_STREQ(SegmentKindName(h->kind), "queue");
  EXPECT_EQ(h->version, 7u);
  EXPECT_EQ(h->flags, 2u);
  EXPECT_EQ(h->creator_pid, static_cast<uint32_t>(getpid()));
  EXPECT_EQ(h->creator_start, liveness::TaskStartTime(getpid()));
  EXPECT_EQ(h->type_tag, TypeTag("int"));
  EXPECT_EQ(h->type_size, 4u);
  EXPECT_EQ(h->data_bytes, 1024u - SegmentHeader::kSize);
}

TEST(SegmentHeaderTest, ForeignDamagedOrTruncatedSegmentsAreDataLoss) {
  std::vector<uint64_t> seg(1024 / 8, 0);
  // Not written at all: no magic.
  EXPECT_EQ(ReadSegmentHeader(seg.data(), 1024).status().code(),
            absl::StatusCode::kDataLoss);
  WriteSegmentHeader(seg.data(), SegmentKind::kLock, 1, 0, 0, 0, 512);
  // Too small to hold a header.
  EXPECT_EQ(ReadSegmentHeader(seg.data(), 63).status().code(),
            absl::StatusCode::kDataLoss);
  // Claims more data than the segment has (truncated under it).
  EXPECT_EQ(ReadSegmentHeader(seg.data(), 512).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_TRUE(ReadSegmentHeader(seg.data(), 576).ok());
  // A header size that is not ours.
  auto* h = reinterpret_cast<SegmentHeader*>(seg.data());
  h->header_size = 128;
  EXPECT_EQ(ReadSegmentHeader(seg.data(), 1024).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(SegmentHeaderTest, TypeTagsTellTypesApart) {
  EXPECT_NE(TypeTag("i"), TypeTag("f"));
  EXPECT_EQ(TypeTag("i"), TypeTag("i"));
  EXPECT_NE(TypeTag(""), 0u);
  EXPECT_STREQ(SegmentKindName(999), "unknown");
}

}  // namespace
}  // namespace mp
