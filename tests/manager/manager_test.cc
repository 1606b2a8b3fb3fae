// tests/manager/manager_test.cc: mp::Manager's containers, from one process
// and from several, anonymous and named, and their errors.

#include "mp/manager/manager.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mp/core/status_macros.h"
#include "tests/watchdog.h"

namespace {

using ::mp::Manager;

std::string UniqueName(const char* what) {
  return absl::StrCat("/mp_manager_test_", what, "_", getpid());
}

TEST(DictTest, SetGetEraseAndPrint) {
  Manager mgr;
  auto d = mgr.dict<int, int>();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(d.Set(i, i * 2).ok());
  EXPECT_EQ(*d.Get(3), 6);
  EXPECT_EQ(d.Get(42).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*d.GetOr(42, -1), -1);
  EXPECT_TRUE(*d.Contains(9));
  EXPECT_EQ(*d.Size(), 10u);
  ASSERT_TRUE(d.Set(3, 33).ok());  // overwrite keeps insertion order
  std::ostringstream os;
  os << d;
  EXPECT_EQ(os.str(),
            "{0: 0, 1: 2, 2: 4, 3: 33, 4: 8, 5: 10, 6: 12, 7: 14, 8: 16, "
            "9: 18}");
  ASSERT_TRUE(d.Erase(3).ok());
  EXPECT_EQ(d.Erase(3).code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(*d.Contains(3));
  EXPECT_EQ(*d.Pop(4), 8);
  EXPECT_EQ(*d.Size(), 8u);
  ASSERT_TRUE(d.Update({{100, 1}, {101, 2}}).ok());
  EXPECT_EQ(d.Keys()->back(), 101);
  EXPECT_EQ(d.Values()->back(), 2);
  ASSERT_TRUE(d.Clear().ok());
  EXPECT_EQ(*d.Size(), 0u);
  EXPECT_EQ(d.Repr(), "{}");
  EXPECT_TRUE(d.CheckConsistent().ok());
}

// Overwriting a value of the same size: in one aligned word it is a single
// store, across words it goes through the transaction; either way the
// value, the order and the count are right.
TEST(DictTest, SameSizeOverwritesInAndAcrossWords) {
  Manager mgr;
  auto d = mgr.dict<std::string, int>();
  std::vector<std::string> keys;
  for (int n = 1; n <= 12; ++n) keys.push_back(std::string(n, 'k'));
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(d.Set(keys[i], static_cast<int>(i)).ok());
  }
  for (int round = 1; round <= 3; ++round) {
    for (size_t i = 0; i < keys.size(); ++i) {
      ASSERT_TRUE(d.Set(keys[i], static_cast<int>(1000 * round + i)).ok());
    }
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(*d.Get(keys[i]), static_cast<int>(3000 + i)) << keys[i];
  }
  EXPECT_EQ(*d.Keys(), keys);
  EXPECT_EQ(*d.Size(), keys.size());
  EXPECT_TRUE(d.CheckConsistent().ok());
  auto big = mgr.dict<int, std::string>();
  ASSERT_TRUE(big.Set(1, "abcdefghijkl").ok());
  ASSERT_TRUE(big.Set(1, "ABCDEFGHIJKL").ok());
  EXPECT_EQ(*big.Get(1), "ABCDEFGHIJKL");
}

TEST(DictTest, StringsAndVectorsAndManyKeys) {
  Manager mgr;
  auto d = mgr.dict<std::string, std::vector<int>>("s");
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(d.Set(absl::StrCat("k", i), std::vector<int>(i % 7, i)).ok());
  }
  for (int i = 0; i < 5000; i += 2) ASSERT_TRUE(d.Erase(absl::StrCat("k", i)).ok());
  EXPECT_EQ(*d.Size(), 2500u);
  EXPECT_EQ(*d.Get("k4999"), std::vector<int>(4999 % 7, 4999));
  EXPECT_TRUE(d.CheckConsistent().ok());
  auto small = mgr.dict<std::string, int>();
  ASSERT_TRUE(small.Set("it's", 1).ok());
  ASSERT_TRUE(small.Set("a", 2).ok());
  EXPECT_EQ(small.Repr(), "{\"it's\": 1, 'a': 2}");
}

TEST(DictTest, ErasedMemoryIsReused) {
  Manager mgr(1 << 20);
  auto d = mgr.dict<int, std::string>();
  const std::string v(200, 'x');
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(d.Set(i, v).ok());
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(d.Erase(i).ok());
  const size_t carved = mgr.BytesCarved();
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(d.Set(i, v).ok());
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(d.Erase(i).ok());
  }
  // Tombstones may force one rehash (a new table); entries are reused.
  EXPECT_LE(mgr.BytesCarved(), carved + 64 * 1024);
}

TEST(DictTest, FullSegmentIsResourceExhaustedAndConsistent) {
  Manager mgr(256 << 10);
  auto d = mgr.dict<int, std::string>();
  const std::string v(1000, 'y');
  int set = 0;
  absl::Status st;
  for (;; ++set) {
    st = d.Set(set, v);
    if (!st.ok()) break;
  }
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_GT(set, 10);
  EXPECT_EQ(*d.Size(), static_cast<size_t>(set));
  EXPECT_TRUE(d.CheckConsistent().ok());
  EXPECT_EQ(*d.Get(set - 1), v);
  EXPECT_EQ(d.Get(set).status().code(), absl::StatusCode::kNotFound);
  // Erasing makes room again.
  ASSERT_TRUE(d.Erase(0).ok());
  EXPECT_TRUE(d.Set(set, v).ok());
  EXPECT_EQ(d.rolled_back(), 0u);
}

TEST(ListTest, PythonOperations) {
  Manager mgr;
  auto l = mgr.list<std::string>();
  ASSERT_TRUE(l.Extend({"0", "1", "2"}).ok());
  EXPECT_EQ(l.Repr(), "['0', '1', '2']");
  ASSERT_TRUE(l.Append("3").ok());
  ASSERT_TRUE(l.Insert(0, "a").ok());
  ASSERT_TRUE(l.Insert(-1, "b").ok());  // before the last, as Python
  ASSERT_TRUE(l.Insert(100, "z").ok());
  EXPECT_EQ(l.Repr(), "['a', '0', '1', '2', 'b', '3', 'z']");
  EXPECT_EQ(*l.At(-1), "z");
  EXPECT_EQ(l.At(7).status().code(), absl::StatusCode::kOutOfRange);
  ASSERT_TRUE(l.Set(1, "zero").ok());
  EXPECT_EQ(l.Set(-8, "x").code(), absl::StatusCode::kOutOfRange);
  ASSERT_TRUE(l.Remove("b").ok());
  EXPECT_EQ(l.Remove("b").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*l.Pop(), "z");
  EXPECT_EQ(*l.Pop(0), "a");
  EXPECT_EQ(*l.Snapshot(), (std::vector<std::string>{"zero", "1", "2", "3"}));
  ASSERT_TRUE(l.Clear().ok());
  EXPECT_EQ(l.Pop().status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(l.Repr(), "[]");
  EXPECT_TRUE(l.CheckConsistent().ok());
}

TEST(ListTest, TwoProcessesAppendTenThousandEach) {
  Manager mgr;
  auto l = mgr.list<int64_t>();
  constexpr int kEach = 10000;
  std::vector<pid_t> kids;
  for (int p = 0; p < 2; ++p) {
    kids.push_back(mp_test::ForkChild([&, p] {
      for (int i = 0; i < kEach; ++i) {
        if (!l.Append(int64_t{p} * kEach + i).ok()) return 1;
      }
      return 0;
    }));
  }
  for (pid_t k : kids) {
    EXPECT_EQ(mp_test::Watch(k, "appender", std::chrono::seconds(120)), "");
  }
  auto all = l.Snapshot();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u * kEach);
  // Each process's items are all there, in its own order.
  int64_t last[2] = {-1, -1};
  for (int64_t v : *all) {
    const int p = static_cast<int>(v / kEach);
    EXPECT_GT(v, last[p]);
    last[p] = v;
  }
  EXPECT_EQ(last[0], kEach - 1);
  EXPECT_EQ(last[1], 2 * kEach - 1);
}

TEST(DictTest, ProcessesSetDisjointAndSharedKeys) {
  Manager mgr;
  auto d = mgr.dict<int, int64_t>();
  auto hits = mgr.Value<int64_t>(0);
  constexpr int kProcs = 4, kKeys = 2000;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    kids.push_back(mp_test::ForkChild([&, p] {
      for (int i = 0; i < kKeys; ++i) {
        if (!d.Set(p * kKeys + i, i).ok()) return 1;
        hits.Add(1);
        // A shared counter in the dict itself, read-modify-write under the
        // value's own lock: exact total expected.
      }
      return 0;
    }));
  }
  for (pid_t k : kids) {
    EXPECT_EQ(mp_test::Watch(k, "setter", std::chrono::seconds(120)), "");
  }
  EXPECT_EQ(*d.Size(), static_cast<size_t>(kProcs * kKeys));
  EXPECT_EQ(hits.Get(), kProcs * kKeys);
  EXPECT_TRUE(d.CheckConsistent().ok());
}

// Every operation at once from several processes: the containers stay
// consistent and the totals are exact (what was added minus what was taken,
// as each process counted it).
TEST(ConcurrencyTest, EveryOperationFromSeveralProcesses) {
  Manager mgr(32 << 20);
  auto d = mgr.dict<int, int64_t>();
  auto l = mgr.list<int64_t>();
  auto ns = mgr.Namespace();
  auto net_list = mgr.Value<int64_t>(0);  // appended/inserted - popped/removed
  auto dict_sum = mgr.Value<int64_t>(0);  // sum of values set - erased
  constexpr int kProcs = 4, kOps = 3000, kKeys = 64;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    kids.push_back(mp_test::ForkChild([&, p] {
      std::mt19937 rng(p + 1);
      for (int i = 0; i < kOps; ++i) {
        // Keys are owned by one process (key % kProcs == p), so that what
        // a Set replaced is known to its setter.
        const int key = (static_cast<int>(rng() % kKeys) / kProcs) * kProcs + p;
        switch (rng() % 9) {
          case 0: {
            auto old = d.Pop(key);
            if (old.ok()) dict_sum.Add(-*old);
            break;
          }
          case 1:
          case 2: {
            auto old = d.Get(key);
            if (!d.Set(key, i).ok()) return 1;
            dict_sum.Add(i - (old.ok() ? *old : 0));
            break;
          }
          case 3:
            if (!l.Append(i).ok()) return 2;
            net_list.Add(1);
            break;
          case 4:
            if (!l.Insert(static_cast<int64_t>(rng() % 8), i).ok()) return 3;
            net_list.Add(1);
            break;
          case 5:
            if (l.Pop(0).ok()) net_list.Add(-1);
            break;
          case 6:
            if (l.Remove(i - 1).ok()) net_list.Add(-1);
            break;
          case 7:
            (void)d.Items();
            (void)l.Snapshot();
            (void)d.Contains(key);
            break;
          case 8:
            if (!ns.Set("last", std::to_string(p)).ok()) return 4;
            (void)ns.Get<std::string>("last");
            break;
        }
      }
      return 0;
    }));
  }
  for (pid_t k : kids) {
    EXPECT_EQ(mp_test::Watch(k, "worker", std::chrono::seconds(120)), "");
  }
  ASSERT_TRUE(d.CheckConsistent().ok());
  ASSERT_TRUE(l.CheckConsistent().ok());
  EXPECT_EQ(static_cast<int64_t>(*l.Size()), net_list.Get());
  int64_t sum = 0;
  auto items = d.Items();
  ASSERT_TRUE(items.ok());
  for (const auto& [k, v] : *items) sum += v;
  EXPECT_EQ(sum, dict_sum.Get());
  EXPECT_TRUE(ns.Get<std::string>("last").ok());
}

TEST(NamespaceTest, AttributesAndCopySemantics) {
  Manager mgr;
  mp::Namespace ns = mgr.Namespace();
  auto missing = ns.Get<std::string>("value");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "'Namespace' object has no attribute 'value'");
  ASSERT_TRUE(ns.Set("my_list", std::vector<std::string>{}).ok());
  const pid_t child = mp_test::ForkChild([&] {
    auto l = ns.Get<std::vector<std::string>>("my_list");
    if (!l.ok()) return 1;
    l->push_back("This is the value");  // a copy: the namespace is unchanged
    return ns.Set("value", std::string("set by child")).ok() ? 0 : 2;
  });
  ASSERT_EQ(mp_test::Watch(child), "");
  EXPECT_TRUE(ns.Get<std::vector<std::string>>("my_list")->empty());
  EXPECT_EQ(*ns.Get<std::string>("value"), "set by child");
  EXPECT_EQ(ns.Get<int>("value").status().code(),
            absl::StatusCode::kInvalidArgument);
  // Assigning it back is what propagates.
  auto l = *ns.Get<std::vector<std::string>>("my_list");
  l.push_back("x");
  ASSERT_TRUE(ns.Set("my_list", l).ok());
  EXPECT_EQ(ns.Get<std::vector<std::string>>("my_list")->size(), 1u);
}

TEST(ValueTest, LockedAndAtomic) {
  Manager mgr;
  auto counter = mgr.Value<int64_t>(5);
  struct Big {
    int64_t a, b, c;
  };
  auto big = mgr.Value<Big>(Big{1, 2, 3});
  EXPECT_EQ(counter.Get(), 5);
  EXPECT_EQ(big.Get().c, 3);
  constexpr int kProcs = 3, kEach = 5000;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    kids.push_back(mp_test::ForkChild([&] {
      for (int i = 0; i < kEach; ++i) {
        counter.Add(1);
        std::lock_guard g(big.get_lock());  // Python: with v.get_lock():
        Big b = big.Get();
        ++b.a;
        b.c = b.a * 3;
        big.Set(b);
      }
      return 0;
    }));
  }
  for (pid_t k : kids) {
    EXPECT_EQ(mp_test::Watch(k, "adder", std::chrono::seconds(120)), "");
  }
  EXPECT_EQ(counter.Get(), 5 + kProcs * kEach);
  EXPECT_EQ(big.Get().a, 1 + kProcs * kEach);
  EXPECT_EQ(big.Get().c, 3 * (1 + kProcs * kEach));
  counter.Set(-1);
  EXPECT_EQ(counter.Get(), -1);
}

TEST(ValueTest, SetWaitsForTheLockHolder) {
  Manager mgr;
  auto v = mgr.Value<int64_t>(1);
  v.get_lock().lock();
  const pid_t child = mp_test::ForkChild([&] {
    v.Set(7);  // blocks until the parent releases the lock
    return 0;
  });
  ASSERT_TRUE(mp_test::AwaitAsleep(child));
  EXPECT_EQ(v.Get(), 1);  // the sleeper has not written
  v.Set(2);               // the holder's own Set does not lock again
  EXPECT_EQ(v.Get(), 2);
  v.get_lock().unlock();
  ASSERT_EQ(mp_test::Watch(child), "");
  EXPECT_EQ(v.Get(), 7);
}

TEST(ArrayTest, GetSetSnapshot) {
  Manager mgr;
  auto a = mgr.Array<double>({1.5, 2.5, 3.5});
  EXPECT_EQ(a.Size(), 3u);
  ASSERT_TRUE(a.Set(1, 9.0).ok());
  EXPECT_EQ(*a.Get(1), 9.0);
  EXPECT_EQ(a.Get(3).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(a.Snapshot(), (std::vector<double>{1.5, 9.0, 3.5}));
  const pid_t child = mp_test::ForkChild([&] {
    std::lock_guard g(a.get_lock());
    return a.Set(2, 7.0).ok() ? 0 : 1;
  });
  ASSERT_EQ(mp_test::Watch(child), "");
  EXPECT_EQ(*a.Get(2), 7.0);
}

TEST(ManagerTest, ContainersAreFoundByNameAndTypeChecked) {
  Manager mgr;
  auto d = mgr.dict<int, int>("results");
  ASSERT_TRUE(d.Set(1, 1).ok());
  EXPECT_TRUE(*mgr.Has("results"));
  EXPECT_FALSE(*mgr.Has("nope"));
  auto again = mgr.dict<int, int>("results");
  EXPECT_EQ(*again.Get(1), 1);
  auto wrong = mgr.MakeDict<int, std::string>("results");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  auto wrong_kind = mgr.MakeList<int>("results");
  EXPECT_EQ(wrong_kind.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_kind.status().message().find("is a dict, not a list"),
            std::string::npos);
  EXPECT_THROW(mgr.list<int>("results"), mp::Error);
  EXPECT_EQ(mgr.MakeList<int>("#1").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(NamedManagerTest, OpenedByAnUnrelatedProcess) {
  const std::string name = UniqueName("named");
  {
    auto mgr = Manager::Create(name);
    ASSERT_TRUE(mgr.ok()) << mgr.status();
    EXPECT_EQ(Manager::Create(name).status().code(),
              absl::StatusCode::kAlreadyExists);
    auto d = mgr->dict<std::string, int64_t>("results");
    ASSERT_TRUE(d.Set("parent", 1).ok());
    // The child execs nothing but shares no mapping: it maps the segment
    // afresh by name, as an unrelated process does (a fresh Open after
    // dropping every inherited handle is the same code path).
    const pid_t child = mp_test::ForkChild([&] {
      auto m2 = Manager::Open(name);
      if (!m2.ok()) return 1;
      auto d2 = m2->MakeDict<std::string, int64_t>("results");
      if (!d2.ok() || *d2->Get("parent") != 1) return 2;
      if (!d2->Set("child", 2).ok()) return 3;
      auto wrong = m2->MakeDict<std::string, std::string>("results");
      if (wrong.status().code() != absl::StatusCode::kInvalidArgument) return 4;
      return 0;
    });
    ASSERT_EQ(mp_test::Watch(child), "");
    EXPECT_EQ(*d.Get("child"), 2);
  }
  auto reopened = Manager::Open(name);
  ASSERT_TRUE(reopened.ok());
  auto results = reopened->dict<std::string, int64_t>("results");
  EXPECT_EQ(*results.Size(), 2u);
  ASSERT_TRUE(Manager::Unlink(name).ok());
  EXPECT_EQ(Manager::Open(name).status().code(), absl::StatusCode::kNotFound);
}

// The exec'd half of ExecdProcessOpensByName: a process that shares no
// memory with the test, only the segment's name.
int ExecdChild(const char* name) {
  auto mgr = Manager::Open(name);
  if (!mgr.ok()) return 10;
  auto d = mgr->MakeDict<std::string, int64_t>("results");
  if (!d.ok()) return 11;
  auto parent = d->Get("parent");
  if (!parent.ok() || *parent != 1) return 12;
  if (!d->Set("exec", 3).ok()) return 13;
  auto wrong = mgr->MakeList<int64_t>("results");
  if (wrong.status().code() != absl::StatusCode::kInvalidArgument) return 14;
  auto hits = mgr->MakeValue<int64_t>(0, "hits");
  if (!hits.ok()) return 15;
  hits->Add(5);
  return 0;
}

TEST(NamedManagerTest, ExecdProcessOpensByName) {
  const std::string name = UniqueName("exec");
  auto mgr = Manager::Create(name);
  ASSERT_TRUE(mgr.ok()) << mgr.status();
  auto d = mgr->dict<std::string, int64_t>("results");
  ASSERT_TRUE(d.Set("parent", 1).ok());
  auto hits = mgr->Value<int64_t>(1, "hits");
  std::fflush(nullptr);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setenv("MP_MANAGER_TEST_OPEN", name.c_str(), 1);
    execl("/proc/self/exe", "manager_test", nullptr);
    _exit(127);
  }
  const int status = mp_test::WaitOrKill(pid);
  ASSERT_TRUE(WIFEXITED(status)) << mp_test::Describe(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(*d.Get("exec"), 3);
  EXPECT_EQ(hits.Get(), 6);
  ASSERT_TRUE(Manager::Unlink(name).ok());
}

TEST(NamedManagerTest, CorruptOrForeignSegmentsAreClearErrors) {
  const std::string name = UniqueName("corrupt");
  {
    auto mgr = Manager::Create(name, 1 << 20);
    ASSERT_TRUE(mgr.ok());
    auto d = mgr->dict<int, int>("d");
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(d.Set(i, i).ok());
  }
  const int fd = shm_open(name.c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  auto* base = static_cast<unsigned char*>(
      mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  close(fd);
  ASSERT_NE(base, MAP_FAILED);
  // 1. The manager header's magic.
  base[64] ^= 0xff;
  auto r = Manager::Open(name);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  base[64] ^= 0xff;
  ASSERT_TRUE(Manager::Open(name).ok());
  // 2. The segment kind.
  uint32_t kind;
  std::memcpy(&kind, base + 8, 4);
  const uint32_t queue_kind = 1;
  std::memcpy(base + 8, &queue_kind, 4);
  EXPECT_EQ(Manager::Open(name).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::memcpy(base + 8, &kind, 4);
  // 3. Garbage over the arena's bookkeeping and containers: every call
  //    answers (an error or a value), none crashes.
  for (size_t off = 4096 + 512; off < 4096 + 64 * 1024; off += 97) {
    base[off] ^= 0x5a;
  }
  auto m = Manager::Open(name);
  if (m.ok()) {
    auto d = m->MakeDict<int, int>("d");
    if (d.ok()) {
      for (int i = 0; i < 100; ++i) (void)d->Get(i);
      (void)d->Items();
      (void)d->CheckConsistent();
    }
  }
  munmap(base, 1 << 20);
  ASSERT_TRUE(Manager::Unlink(name).ok());
}

// A view of a dict's resident header, to forge what a hostile or broken
// process could leave in the segment.
struct HeaderPeek : mp::Dict<int, int> {
  explicit HeaderPeek(const mp::Dict<int, int>& d) : mp::Dict<int, int>(d) {}
  mp::manager_internal::ContainerHeader* header() { return header_; }
};

TEST(HostileBytesTest, ForgedIntentRecordsAreDataLossNotCrashes) {
  struct Forgery {
    const char* what;
    void (*forge)(mp::manager_internal::ContainerHeader*);
  };
  const Forgery forgeries[] = {
      {"write outside the arena",
       [](auto* h) {
         h->intent.n_writes = 1;
         h->intent.writes[0].offset = uint64_t{1} << 40;
       }},
      {"alloc that is no block",
       [](auto* h) {
         h->intent.n_allocs = 1;
         h->intent.allocs[0] = 64 * 7;  // inside the arena, not a payload
       }},
      {"counts past the record",
       [](auto* h) { h->intent.n_writes = 200; }},
  };
  for (const Forgery& f : forgeries) {
    SCOPED_TRACE(f.what);
    Manager mgr(1 << 20);
    auto d = mgr.dict<int, int>();
    ASSERT_TRUE(d.Set(1, 1).ok());
    HeaderPeek peek(d);
    auto* h = peek.header();
    h->intent.n_writes = 0;
    h->intent.n_allocs = 0;
    h->intent.n_frees = 0;
    h->intent.cursor = 0;
    f.forge(h);
    h->state.store(h->state.load() | 1);  // phase 1: an update open
    auto got = d.Get(1);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
    // Later calls: DataLoss again, or (a bad free skipped past by its
    // cursor: the block is leaked) a consistent container.
    const absl::Status later = d.Set(2, 2);
    if (later.ok()) {
      EXPECT_TRUE(d.CheckConsistent().ok());
      EXPECT_EQ(*d.Get(1), 1);
    } else {
      EXPECT_EQ(later.code(), absl::StatusCode::kDataLoss);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* name = std::getenv("MP_MANAGER_TEST_OPEN")) {
    return ExecdChild(name);
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
