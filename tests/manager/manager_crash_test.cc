// tests/manager/manager_crash_test.cc: a process killed in the middle of a
// container update never leaves the container unusable or inconsistent; the
// next caller rolls the update back or completes it, and counts it.
//
// FaultPointCrashTest (meaningful under --config=fault): every update kind
// (dict insert, insert with rehash, overwrite by a new entry or in place,
// erase, clear; list append,
// append with growth, insert, pop, clear; array set; a container created in
// the directory) is run in a child armed to die at the n-th hit of each
// manager fault point, n = 1, 2, ... until the update completes without a
// kill. The parent then checks the container: consistent, equal to its
// state before the update if one rollback was counted, or after it if one
// completion was counted, and exactly one of the two.
//
// RandomKillCrashTest (every build): children append 0, 1, 2, ... to a list
// and set/erase keys of a dict, and are SIGKILLed at random moments; after
// each kill the list must be exactly 0..n-1 and the dict consistent.
// MP_MANAGER_KILLS=<n> sets the number of kills (default 40; 1000+ for a
// soak: bazel test --test_env=MP_MANAGER_KILLS=1000 ...).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mp/core/fault.h"
#include "mp/core/status_macros.h"
#include "mp/manager/manager.h"
#include "tests/watchdog.h"

namespace {

using ::mp::Manager;

struct Big {
  int64_t a, b, c;
};

struct Scenario {
  std::string name;
  std::function<void(Manager&)> prepare;
  std::function<absl::Status(Manager&)> update;
  // The container's state in words, and its checks and counters.
  std::function<std::string(Manager&)> state;
  std::function<absl::Status(Manager&)> check;
  std::function<std::pair<uint64_t, uint64_t>(Manager&)> counters;
};

Scenario DictScenario(std::string name, int prefill,
                      std::function<absl::Status(mp::Dict<int, std::string>)> op) {
  Scenario s;
  s.name = std::move(name);
  s.prepare = [prefill](Manager& m) {
    auto d = m.dict<int, std::string>("c");
    for (int i = 0; i < prefill; ++i) {
      MP_CHECK_OK(d.Set(i, std::string(i + 1, 'v')));
    }
  };
  s.update = [op](Manager& m) { return op(m.dict<int, std::string>("c")); };
  s.state = [](Manager& m) { return m.dict<int, std::string>("c").Repr(); };
  s.check = [](Manager& m) {
    return m.dict<int, std::string>("c").CheckConsistent();
  };
  s.counters = [](Manager& m) {
    auto d = m.dict<int, std::string>("c");
    return std::make_pair(d.rolled_back(), d.completed());
  };
  return s;
}

Scenario ListScenario(std::string name, int prefill,
                      std::function<absl::Status(mp::List<std::string>)> op) {
  Scenario s;
  s.name = std::move(name);
  s.prepare = [prefill](Manager& m) {
    auto l = m.list<std::string>("c");
    for (int i = 0; i < prefill; ++i) MP_CHECK_OK(l.Append(absl::StrCat(i)));
  };
  s.update = [op](Manager& m) { return op(m.list<std::string>("c")); };
  s.state = [](Manager& m) { return m.list<std::string>("c").Repr(); };
  s.check = [](Manager& m) { return m.list<std::string>("c").CheckConsistent(); };
  s.counters = [](Manager& m) {
    auto l = m.list<std::string>("c");
    return std::make_pair(l.rolled_back(), l.completed());
  };
  return s;
}

std::vector<Scenario> Scenarios() {
  std::vector<Scenario> all;
  all.push_back(DictScenario("dict_insert", 3, [](auto d) {
    return d.Set(100, "new");
  }));
  all.push_back(DictScenario("dict_insert_rehash", 6, [](auto d) {
    return d.Set(100, "new");
  }));
  all.push_back(DictScenario("dict_overwrite", 5, [](auto d) {
    return d.Set(2, "other");
  }));
  // Same size: rewritten in place through the log.
  all.push_back(DictScenario("dict_overwrite_in_place", 5, [](auto d) {
    return d.Set(2, "xyz");
  }));
  all.push_back(DictScenario("dict_erase", 5, [](auto d) { return d.Erase(3); }));
  all.push_back(DictScenario("dict_clear", 5, [](auto d) { return d.Clear(); }));
  all.push_back(ListScenario("list_append", 3, [](auto l) {
    return l.Append("new");
  }));
  all.push_back(ListScenario("list_append_grow", 8, [](auto l) {
    return l.Append("new");
  }));
  all.push_back(ListScenario("list_insert", 4, [](auto l) {
    return l.Insert(0, "new");
  }));
  all.push_back(ListScenario("list_pop_middle", 5, [](auto l) {
    return l.Pop(2).status();
  }));
  all.push_back(ListScenario("list_set", 5, [](auto l) {
    return l.Set(1, "new");
  }));
  all.push_back(ListScenario("list_clear", 5, [](auto l) { return l.Clear(); }));
  {
    Scenario s;
    s.name = "array_set";
    s.prepare = [](Manager& m) { (void)m.Value<Big>(Big{1, 2, 3}, "c"); };
    s.update = [](Manager& m) {
      m.Value<Big>(Big{}, "c").Set(Big{4, 5, 6});
      return absl::OkStatus();
    };
    s.state = [](Manager& m) {
      Big b = m.Value<Big>(Big{}, "c").Get();
      return absl::StrCat(b.a, ",", b.b, ",", b.c);
    };
    s.check = [](Manager& m) { return m.Value<Big>(Big{}, "c").CheckConsistent(); };
    s.counters = [](Manager& m) {
      auto v = m.Value<Big>(Big{}, "c");
      return std::make_pair(v.rolled_back(), v.completed());
    };
    all.push_back(std::move(s));
  }
  {
    // The directory itself: creating a container.
    Scenario s;
    s.name = "directory_create";
    s.prepare = [](Manager& m) { (void)m.dict<int, int>("c"); };
    s.update = [](Manager& m) { return m.MakeDict<int, int>("new").status(); };
    s.state = [](Manager& m) {
      return std::string(*m.Has("new") ? "present" : "absent");
    };
    s.check = [](Manager& m) { return m.dict<int, int>("c").CheckConsistent(); };
    s.counters = [](Manager&) { return std::make_pair(uint64_t{0}, uint64_t{0}); };
    all.push_back(std::move(s));
  }
  return all;
}

constexpr std::string_view kPoints[] = {
    "manager.txn.after_begin", "manager.txn.after_alloc",
    "manager.txn.after_log",   "manager.txn.after_write",
    "manager.txn.after_commit", "manager.txn.after_free",
};

TEST(FaultPointCrashTest, EveryUpdateAtEveryPoint) {
  if (!mp::fault::kEnabled) {
    GTEST_SKIP() << "fault points are compiled out; run with --config=fault";
  }
  int kills = 0, rollbacks = 0, completions = 0;
  for (const Scenario& sc : Scenarios()) {
    // The expected state after the update, from an uninterrupted run.
    std::string after;
    {
      Manager twin(1 << 20);
      sc.prepare(twin);
      ASSERT_TRUE(sc.update(twin).ok()) << sc.name;
      after = sc.state(twin);
    }
    for (std::string_view point : kPoints) {
      for (int n = 1;; ++n) {
        SCOPED_TRACE(absl::StrCat(sc.name, " at ", std::string(point), " #", n));
        Manager mgr(1 << 20);
        sc.prepare(mgr);
        const std::string before = sc.state(mgr);
        const pid_t child = mp_test::ForkChild([&] {
          MP_CHECK_OK(mp::fault::Arm(point, n, mp::fault::Action::kKill));
          return sc.update(mgr).ok() ? 0 : 1;
        });
        const int status = mp_test::WaitOrKill(child);
        ASSERT_GE(status, 0) << mp_test::Describe(status);
        if (WIFEXITED(status)) {
          ASSERT_EQ(WEXITSTATUS(status), 0);
          EXPECT_EQ(sc.state(mgr), after);
          break;  // the point has fewer than n hits in this update
        }
        ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            << mp_test::Describe(status);
        ++kills;
        // The next user recovers (CheckConsistent takes the lock).
        ASSERT_TRUE(sc.check(mgr).ok()) << sc.check(mgr);
        const std::string now = sc.state(mgr);
        if (sc.name == "directory_create") {
          const bool rolled = point != "manager.txn.after_commit" &&
                              point != "manager.txn.after_free";
          EXPECT_EQ(now, rolled ? "absent" : "present");
          continue;
        }
        auto [rolled, completed] = sc.counters(mgr);
        ASSERT_EQ(rolled + completed, 1u) << "rolled " << rolled
                                          << " completed " << completed;
        if (rolled == 1) {
          ++rollbacks;
          EXPECT_EQ(now, before);
          // Still fully usable: the update itself now goes through.
          ASSERT_TRUE(sc.update(mgr).ok());
        } else {
          ++completions;
        }
        EXPECT_EQ(sc.state(mgr), after);
        ASSERT_TRUE(sc.check(mgr).ok());
        auto [rolled2, completed2] = sc.counters(mgr);
        EXPECT_EQ(rolled2 + completed2, 1u);
      }
    }
  }
  // Every point was reached by some update, both outcomes happened.
  EXPECT_GT(kills, 60);
  EXPECT_GT(rollbacks, 0);
  EXPECT_GT(completions, 0);
  std::printf("kills %d: %d rolled back, %d completed\n", kills, rollbacks,
              completions);
}

TEST(FaultPointCrashTest, RecovererKilledInRecoveryIsRecoveredOnce) {
  if (!mp::fault::kEnabled) {
    GTEST_SKIP() << "fault points are compiled out; run with --config=fault";
  }
  Manager mgr(1 << 20);
  auto d = mgr.dict<int, int>("c");
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(d.Set(i, i).ok());
  const std::string before = d.Repr();
  pid_t child = mp_test::ForkChild([&] {
    MP_CHECK_OK(mp::fault::Arm("manager.txn.after_write", 3,
                               mp::fault::Action::kKill));
    return d.Set(100, 100).ok() ? 0 : 1;  // rehash + insert
  });
  int status = mp_test::WaitOrKill(child);
  ASSERT_TRUE(WIFSIGNALED(status)) << mp_test::Describe(status);
  // The first recoverer dies after restoring the words.
  child = mp_test::ForkChild([&] {
    MP_CHECK_OK(mp::fault::Arm("manager.recover.after_undo", 1,
                               mp::fault::Action::kKill));
    return d.Size().ok() ? 0 : 1;
  });
  status = mp_test::WaitOrKill(child);
  ASSERT_TRUE(WIFSIGNALED(status)) << mp_test::Describe(status);
  ASSERT_TRUE(d.CheckConsistent().ok());
  EXPECT_EQ(d.rolled_back(), 1u);
  EXPECT_EQ(d.completed(), 0u);
  EXPECT_EQ(d.Repr(), before);
}

TEST(RandomKillCrashTest, ListStaysAPrefixAndDictConsistent) {
  const int kills = mp_test::CountFromEnv("MP_MANAGER_KILLS", 40);
  Manager mgr(16 << 20);
  auto l = mgr.list<int64_t>("seq");
  auto d = mgr.dict<int64_t, std::string>("window");
  // Overwrites of a same-size value in one word (a single store, no
  // transaction): a kill leaves each value whole, the old or the new.
  auto last = mgr.dict<int64_t, int64_t>("last");
  std::mt19937 rng(12345);
  size_t cleared = 0;  // items the rounds appended before a clear
  for (int k = 0; k < kills; ++k) {
    const pid_t child = mp_test::ForkChild([&] {
      for (;;) {
        const size_t n = *l.Size();
        if (!l.Append(static_cast<int64_t>(n)).ok()) return 1;
        if (!d.Set(static_cast<int64_t>(n), std::string(n % 50, 'x')).ok()) {
          return 2;
        }
        if (n >= 20) (void)d.Erase(static_cast<int64_t>(n - 20));
        if (!last.Set(static_cast<int64_t>(n % 8), static_cast<int64_t>(n))
                 .ok()) {
          return 3;
        }
      }
    });
    usleep(std::uniform_int_distribution<int>(200, 3000)(rng));
    kill(child, SIGKILL);
    const int status = mp_test::WaitOrKill(child);
    // The child never stops by itself: an exit is a failed update.
    ASSERT_TRUE(WIFSIGNALED(status)) << mp_test::Describe(status);
    ASSERT_TRUE(l.CheckConsistent().ok()) << "kill " << k;
    ASSERT_TRUE(d.CheckConsistent().ok()) << "kill " << k;
    ASSERT_TRUE(last.CheckConsistent().ok()) << "kill " << k;
    auto items = last.Items();
    ASSERT_TRUE(items.ok());
    for (const auto& [key, value] : *items) {
      ASSERT_EQ(value % 8, key) << "kill " << k << ": a torn value";
    }
    auto all = l.Snapshot();
    ASSERT_TRUE(all.ok());
    for (size_t i = 0; i < all->size(); ++i) {
      ASSERT_EQ((*all)[i], static_cast<int64_t>(i)) << "kill " << k;
    }
    // Keep within the segment over long runs: start over (a clear of
    // thousands of entries, whose memory the next rounds reuse).
    if (all->size() > 20000) {
      cleared += all->size();
      ASSERT_TRUE(l.Clear().ok());
      ASSERT_TRUE(d.Clear().ok());
      ASSERT_TRUE(last.Clear().ok());
    }
  }
  // Each kill interrupted at most one update of each container.
  EXPECT_LE(l.rolled_back() + l.completed(), static_cast<uint64_t>(kills));
  EXPECT_LE(d.rolled_back() + d.completed(), static_cast<uint64_t>(kills));
  // The writers got work done between the kills (a clear in the last
  // round may leave the list itself empty).
  EXPECT_GT(cleared + *l.Size(), 0u);
  std::printf("%d kills: list %zu items (%zu before clears), rolled back "
              "%lu, completed %lu; "
              "dict rolled back %lu, completed %lu\n",
              kills, *l.Size(), cleared,
              static_cast<unsigned long>(l.rolled_back()),
              static_cast<unsigned long>(l.completed()),
              static_cast<unsigned long>(d.rolled_back()),
              static_cast<unsigned long>(d.completed()));
}

}  // namespace
