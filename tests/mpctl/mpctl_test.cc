// mpctl over fixtures: segments written by mp's own code into a scratch
// directory, held by child processes that are then SIGKILLed; foreign,
// truncated, corrupt and recycled-pid files; the command itself (JSON, exit
// codes); and real named segments in /dev/shm (unique names, unlinked).

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <new>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "mp/core/liveness.h"
#include "mp/core/segment_header.h"
#include "mp/queue/internal/ring.h"
#include "mp/queue/queue.h"
#include "mp/sync/event.h"
#include "mp/sync/internal/snapshot.h"
#include "mp/sync/lock.h"
#include "tests/mpctl/json_lite.h"
#include "tests/watchdog.h"
#include "tools/mpctl/segments.h"

namespace {

using mp::SegmentHeader;
using mp::SegmentKind;
using mp::queue_internal::Ring;
using mp::queue_internal::RingMode;
using mp::queue_internal::RingView;
using mpctl::Verdict;

class MpctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string t = std::string(base != nullptr ? base : "/tmp") + "/mpctl.XXXXXX";
    ASSERT_NE(mkdtemp(t.data()), nullptr);
    dir_ = t;
    options_.dir = dir_;
  }
  void TearDown() override {
    for (pid_t pid : children_) mp_test::KillAndReap(pid);
    std::string cmd = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(system(cmd.c_str()), 0);
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // A file of `size` zero bytes, mapped; fn(base) fills it.
  template <class F>
  void MakeFile(const std::string& name, size_t size, F fn) {
    const int fd = open(Path(name).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(p, MAP_FAILED);
    fn(static_cast<char*>(p));
    munmap(p, size);
    close(fd);
  }
  // As CreateNamedQueue lays a named queue out.
  void MakeQueue(const std::string& name, RingMode mode, size_t cap = 4096) {
    MakeFile(name, SegmentHeader::kSize + Ring::BytesFor(cap), [&](char* base) {
      RingView::Format(base + SegmentHeader::kSize, cap, mode);
      mp::WriteSegmentHeader(base, SegmentKind::kQueue, Ring::kVersion,
                             static_cast<uint32_t>(mode), mp::TypeTag("int"),
                             sizeof(int), Ring::BytesFor(cap));
    });
  }
  // As sync_internal::CreateNamed lays a named sync object out.
  template <class State, class... Args>
  void MakeSync(const std::string& name, SegmentKind kind, Args... args) {
    MakeFile(name, SegmentHeader::kSize + sizeof(State), [&](char* base) {
      new (base + SegmentHeader::kSize) State(args...);
      mp::WriteSegmentHeader(base, kind, mp::sync_internal::KnownSyncVersion(),
                             0, 0, sizeof(State), sizeof(State));
    });
  }
  void WriteBytes(const std::string& name, const std::string& bytes) {
    std::ofstream(Path(name), std::ios::binary) << bytes;
  }
  template <class T>
  void Patch(const std::string& name, size_t at, T value) {
    const int fd = open(Path(name).c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, &value, sizeof(value), static_cast<off_t>(at)),
              static_cast<ssize_t>(sizeof(value)));
    close(fd);
  }

  // A child that maps `name` (keeping its fd open when `keep_fd`), runs
  // `body(base)` and then sleeps until killed; returns once the body ran.
  template <class F>
  pid_t Hold(const std::string& name, bool keep_fd, F body) {
    int ready[2];
    if (pipe(ready) != 0) std::abort();
    const std::string path = Path(name);
    const pid_t pid = mp_test::ForkChild([&] {
      close(ready[0]);
      const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) return 10;
      struct stat st;
      fstat(fd, &st);
      void* p = mmap(nullptr, static_cast<size_t>(st.st_size),
                     PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) return 11;
      if (!keep_fd) close(fd);
      body(static_cast<char*>(p), static_cast<size_t>(st.st_size), ready[1]);
      return 12;  // bodies never return
    });
    close(ready[1]);
    char c = 0;
    EXPECT_EQ(read(ready[0], &c, 1), 1) << "child did not get ready";
    close(ready[0]);
    children_.push_back(pid);
    return pid;
  }
  static void Ready(int fd) {
    const char c = 'r';
    if (write(fd, &c, 1) != 1) _exit(13);
    for (;;) pause();
  }
  void Kill(pid_t pid) {
    mp_test::KillAndReap(pid);
    children_.erase(std::remove(children_.begin(), children_.end(), pid),
                    children_.end());
  }

  const mpctl::SegmentInfo* Find(const mpctl::Listing& l, const std::string& name) {
    for (const auto& s : l.segments) {
      if (s.name == name) return &s;
    }
    ADD_FAILURE() << name << " not listed";
    return nullptr;
  }
  bool Exists(const std::string& name) {
    struct stat st;
    return lstat(Path(name).c_str(), &st) == 0;
  }

  std::string dir_;
  mpctl::Options options_;
  std::vector<pid_t> children_;
};

// A child holding a queue's consumer lock (inside Pop's sink), a lock and an
// event: in-use with the child as holder; after SIGKILL and reaping, stale,
// with the dead holders named as dead.
TEST_F(MpctlTest, HeldByAChildThenStaleAfterItIsKilled) {
  MakeQueue("q", RingMode::kMpmc);
  MakeSync<mp::ResidentLock>("lock", SegmentKind::kLock);
  MakeSync<mp::ResidentEvent>("event", SegmentKind::kEvent);
  const pid_t q_child = Hold("q", true, [](char* base, size_t size, int ready) {
    auto v = RingView::Attach(base + SegmentHeader::kSize, size - SegmentHeader::kSize);
    if (!v.ok()) _exit(20);
    (void)v->Push("one", 3, mp::Deadline::Past());
    (void)v->Push("two", 3, mp::Deadline::Past());
    static int ready_fd;
    ready_fd = ready;
    (void)v->Pop([](void*, const char*, size_t) -> absl::Status {
      Ready(ready_fd);  // holds the consumer lock forever
      return absl::OkStatus();
    }, nullptr, mp::Deadline::Infinite());
  });
  const pid_t lock_child = Hold("lock", false, [](char* base, size_t, int ready) {
    auto* lock = reinterpret_cast<mp::ResidentLock*>(base + SegmentHeader::kSize);
    if (lock->Acquire() != mp::LockResult::kAcquired) _exit(21);
    Ready(ready);
  });
  const pid_t event_child = Hold("event", false, [](char* base, size_t, int ready) {
    reinterpret_cast<mp::ResidentEvent*>(base + SegmentHeader::kSize)->Set();
    Ready(ready);
  });

  absl::StatusOr<mpctl::Listing> l = mpctl::ListSegments(options_);
  ASSERT_TRUE(l.ok()) << l.status();
  ASSERT_EQ(l->segments.size(), 3u);
  for (const auto& [name, pid] : {std::pair<std::string, pid_t>{"q", q_child},
                                  {"lock", lock_child},
                                  {"event", event_child}}) {
    const mpctl::SegmentInfo* s = Find(*l, name);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->verdict, Verdict::kInUse) << name;
    ASSERT_EQ(s->holders.size(), 1u) << name;
    EXPECT_EQ(s->holders[0].pid, static_cast<uint32_t>(pid));
    EXPECT_TRUE(s->holders[0].maps);
    EXPECT_EQ(s->holders[0].open_fd, name == "q");
    EXPECT_EQ(s->creator, mpctl::Liveness::kAlive);  // this process
  }
  EXPECT_EQ(Find(*l, "q")->kind, "queue MPMC");

  absl::StatusOr<mpctl::Inspection> q = mpctl::Inspect(options_, "q");
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_TRUE(q->ring.has_value()) << q->state_problem;
  EXPECT_TRUE(q->ring->problems.empty());
  EXPECT_EQ(q->ring->capacity, 4096u);
  EXPECT_EQ(q->ring->records_queued, 2u);  // the one in the sink is at head
  EXPECT_EQ(q->ring->consumer_lock.holder_tid, static_cast<uint32_t>(q_child));
  EXPECT_EQ(q->consumer_lock_holder, mpctl::Liveness::kAlive);
  absl::StatusOr<mpctl::Inspection> lock = mpctl::Inspect(options_, "lock");
  ASSERT_TRUE(lock.ok() && lock->sync.has_value());
  EXPECT_EQ(lock->sync->lock.owner_tid, static_cast<uint32_t>(lock_child));
  EXPECT_EQ(lock->lock_owner, mpctl::Liveness::kAlive);
  absl::StatusOr<mpctl::Inspection> event = mpctl::Inspect(options_, "event");
  ASSERT_TRUE(event.ok() && event->sync.has_value());
  EXPECT_TRUE(event->sync->event_set);

  Kill(q_child);
  Kill(lock_child);
  Kill(event_child);
  l = mpctl::ListSegments(options_);
  ASSERT_TRUE(l.ok());
  for (const auto& s : l->segments) {
    EXPECT_EQ(s.verdict, Verdict::kStale) << s.name;
    EXPECT_TRUE(s.holders.empty()) << s.name;
  }
  q = mpctl::Inspect(options_, "q");
  ASSERT_TRUE(q.ok() && q->ring.has_value());
  EXPECT_EQ(q->ring->consumer_lock.holder_tid, static_cast<uint32_t>(q_child));
  EXPECT_EQ(q->consumer_lock_holder, mpctl::Liveness::kDead);
  lock = mpctl::Inspect(options_, "lock");
  ASSERT_TRUE(lock.ok() && lock->sync.has_value());
  // The kernel's robust-list cleanup: owner gone, OWNER_DIED set.
  EXPECT_TRUE(lock->sync->lock.owner_died);
}

TEST_F(MpctlTest, VerdictsForFilesThatAreNotSaneSegments) {
  MakeSync<mp::ResidentLock>("mine", SegmentKind::kLock);
  MakeSync<mp::ResidentLock>("recycled", SegmentKind::kLock);
  // The right pid (this live process) with another start time.
  Patch<uint64_t>("recycled", offsetof(SegmentHeader, creator_start),
                  mp::liveness::TaskStartTime(getpid()) + 12345);
  WriteBytes("foreign", std::string(200, 'x'));
  WriteBytes("tiny", "ab");
  MakeQueue("truncated", RingMode::kSpsc);
  ASSERT_EQ(truncate(Path("truncated").c_str(), 100), 0);
  MakeQueue("bad-header-size", RingMode::kSpsc);
  Patch<uint32_t>("bad-header-size", offsetof(SegmentHeader, header_size), 63);
  MakeQueue("bad-mode", RingMode::kSpsc);
  Patch<uint32_t>("bad-mode", offsetof(SegmentHeader, flags), 9);
  MakeSync<mp::ResidentLock>("longer", SegmentKind::kLock);
  ASSERT_EQ(truncate(Path("longer").c_str(), 4096), 0);
  ASSERT_EQ(mkfifo(Path("fifo").c_str(), 0600), 0);
  ASSERT_EQ(symlink(Path("mine").c_str(), Path("link").c_str()), 0);

  absl::StatusOr<mpctl::Listing> l = mpctl::ListSegments(options_);
  ASSERT_TRUE(l.ok());
  const std::vector<std::pair<std::string, Verdict>> want = {
      {"mine", Verdict::kStale},          {"recycled", Verdict::kStale},
      {"foreign", Verdict::kForeign},     {"tiny", Verdict::kForeign},
      {"truncated", Verdict::kCorrupt},   {"bad-header-size", Verdict::kCorrupt},
      {"bad-mode", Verdict::kCorrupt},    {"longer", Verdict::kCorrupt},
      {"fifo", Verdict::kSkipped},        {"link", Verdict::kSkipped}};
  ASSERT_EQ(l->segments.size(), want.size());
  for (const auto& [name, verdict] : want) {
    const mpctl::SegmentInfo* s = Find(*l, name);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->verdict, verdict) << name << ": " << VerdictName(s->verdict)
                                   << " (" << s->problem << ")";
    if (verdict != Verdict::kStale) {
      EXPECT_FALSE(s->problem.empty()) << name;
    }
  }
  EXPECT_EQ(Find(*l, "mine")->creator, mpctl::Liveness::kAlive);
  EXPECT_EQ(Find(*l, "recycled")->creator, mpctl::Liveness::kDead);
  EXPECT_EQ(Find(*l, "fifo")->file_type, "fifo");
  EXPECT_EQ(Find(*l, "link")->file_type, "symlink");

  // Inspect reports, never follows.
  absl::StatusOr<mpctl::Inspection> in = mpctl::Inspect(options_, "truncated");
  ASSERT_TRUE(in.ok());
  EXPECT_FALSE(in->ring.has_value());
  EXPECT_FALSE(in->state_problem.empty());
  in = mpctl::Inspect(options_, "link");
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(in->info.verdict, Verdict::kSkipped);
  EXPECT_EQ(mpctl::Inspect(options_, "absent").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(mpctl::Inspect(options_, "../etc").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A ring whose words were rewritten: inspect names the bad fields.
TEST_F(MpctlTest, InspectShowsCorruptFields) {
  MakeQueue("q", RingMode::kMpmc);
  const size_t ring = SegmentHeader::kSize;
  Patch<uint64_t>("q", ring + 128, 1 << 20);  // head far past tail
  absl::StatusOr<mpctl::Inspection> in = mpctl::Inspect(options_, "q");
  ASSERT_TRUE(in.ok() && in->ring.has_value());
  EXPECT_FALSE(in->ring->indices_valid);
  EXPECT_FALSE(in->ring->problems.empty());
}

TEST_F(MpctlTest, GcRemovesExactlyTheStaleOnes) {
  MakeQueue("stale-q", RingMode::kSpsc);
  MakeSync<mp::ResidentLock>("recycled", SegmentKind::kLock);
  Patch<uint64_t>("recycled", offsetof(SegmentHeader, creator_start), 1);
  MakeSync<mp::ResidentEvent>("held", SegmentKind::kEvent);
  WriteBytes("foreign", "not mp");
  MakeQueue("corrupt", RingMode::kSpsc);
  ASSERT_EQ(truncate(Path("corrupt").c_str(), 100), 0);
  ASSERT_EQ(mkfifo(Path("fifo").c_str(), 0600), 0);
  WriteBytes("foreign-held", "also not mp, but open");
  // A kind this mpctl does not know (a newer mp's), nobody mapping it.
  MakeSync<mp::ResidentEvent>("unknown-kind", SegmentKind::kEvent);
  Patch<uint32_t>("unknown-kind", offsetof(SegmentHeader, kind), 99);
  const pid_t child = Hold("held", false, [](char*, size_t, int ready) { Ready(ready); });
  const pid_t child2 = Hold("foreign-held", true, [](char*, size_t, int ready) { Ready(ready); });

  absl::StatusOr<mpctl::GcResult> r = mpctl::CollectGarbage(options_, {.dry_run = true});
  ASSERT_TRUE(r.ok());
  std::vector<std::string> removed = r->removed;
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{"recycled", "stale-q"}));
  EXPECT_TRUE(Exists("stale-q") && Exists("recycled"));

  r = mpctl::CollectGarbage(options_, {});
  ASSERT_TRUE(r.ok());
  removed = r->removed;
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{"recycled", "stale-q"}));
  EXPECT_TRUE(r->failed.empty());
  EXPECT_FALSE(Exists("stale-q") || Exists("recycled"));
  for (const char* kept :
       {"held", "foreign", "corrupt", "fifo", "foreign-held", "unknown-kind"}) {
    EXPECT_TRUE(Exists(kept)) << kept;
  }

  // Asked for: unheld corrupt and foreign files go; held ones never.
  r = mpctl::CollectGarbage(options_, {.include_corrupt = true, .include_foreign = true});
  ASSERT_TRUE(r.ok());
  removed = r->removed;
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{"corrupt", "foreign"}));
  EXPECT_TRUE(Exists("held") && Exists("foreign-held") && Exists("fifo"));
  r = mpctl::CollectGarbage(options_, {.include_unknown_kinds = true});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->removed, std::vector<std::string>{"unknown-kind"});

  Kill(child);
  Kill(child2);
  r = mpctl::CollectGarbage(options_, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->removed, std::vector<std::string>{"held"});
}

TEST_F(MpctlTest, RmRefusesASegmentInUseUnlessForced) {
  MakeSync<mp::ResidentEvent>("held", SegmentKind::kEvent);
  MakeSync<mp::ResidentEvent>("free", SegmentKind::kEvent);
  ASSERT_EQ(mkfifo(Path("fifo").c_str(), 0600), 0);
  const pid_t child = Hold("held", true, [](char*, size_t, int ready) { Ready(ready); });
  absl::Status s = mpctl::RemoveSegment(options_, "held", false);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find(std::to_string(child)), absl::string_view::npos) << s;
  EXPECT_TRUE(Exists("held"));
  EXPECT_TRUE(mpctl::RemoveSegment(options_, "/free", false).ok());
  EXPECT_FALSE(Exists("free"));
  EXPECT_EQ(mpctl::RemoveSegment(options_, "fifo", true).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(mpctl::RemoveSegment(options_, "free", false).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(mpctl::RemoveSegment(options_, "a/b", false).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(mpctl::RemoveSegment(options_, "held", true).ok());
  EXPECT_FALSE(Exists("held"));
  Kill(child);
}

// A /proc of fixtures: a process whose maps name the file (a path with a
// space), one whose maps cannot be read.
TEST_F(MpctlTest, ReadsAProcRootOfFixtures) {
  MakeSync<mp::ResidentEvent>("with space", SegmentKind::kEvent);
  struct stat st;
  ASSERT_EQ(stat(Path("with space").c_str(), &st), 0);
  const std::string proc = dir_ + "/proc";
  ASSERT_EQ(mkdir(proc.c_str(), 0700), 0);
  ASSERT_EQ(mkdir((proc + "/4242").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((proc + "/4343").c_str(), 0700), 0);
  std::ofstream(proc + "/4242/comm") << "holder\n";
  char line[512];
  snprintf(line, sizeof(line),
           "7f0000000000-7f0000001000 rw-s 00000000 %02x:%02x %lu                     %s (deleted)\n",
           major(st.st_dev), minor(st.st_dev), static_cast<unsigned long>(st.st_ino),
           Path("with space").c_str());
  std::ofstream(proc + "/4242/maps") << "00400000-00401000 r-xp 00000000 00:00 0 \n" << line;
  std::ofstream(proc + "/4343/comm") << "secret\n";
  mpctl::Options o = options_;
  o.proc_root = proc;
  // Only the segment: the fixture /proc lives in the same directory.
  absl::StatusOr<mpctl::SegmentInfo> s =
      mpctl::DescribeSegment(o, "with space", mpctl::ScanProcesses(o));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->verdict, Verdict::kInUse);
  ASSERT_EQ(s->holders.size(), 1u);
  EXPECT_EQ(s->holders[0].pid, 4242u);
  EXPECT_EQ(s->holders[0].comm, "holder");
  EXPECT_EQ(mpctl::ScanProcesses(o).unreadable_pids, std::vector<uint32_t>{4343});
  // This process is not in the fixture /proc: its pid reads as dead.
  EXPECT_EQ(s->creator, mpctl::Liveness::kDead);
}

// Real named segments made by the library, in /dev/shm (unique names).
TEST(MpctlDevShmTest, SeesTheLibrarysOwnSegments) {
  const std::string q_name = "mpctl-test-q-" + std::to_string(getpid());
  const std::string l_name = "mpctl-test-l-" + std::to_string(getpid());
  mpctl::Options o;  // /dev/shm, /proc
  {
    auto q = mp::Queue<int>::Create(
        q_name, {.mode = mp::QueueMode::kMpmc});
    ASSERT_TRUE(q.ok()) << q.status();
    auto lock = mp::Lock::Create(l_name);
    ASSERT_TRUE(lock.ok()) << lock.status();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(q->Put(i).ok());
    ASSERT_EQ(lock->Acquire(), mp::LockResult::kAcquired);

    absl::StatusOr<mpctl::Inspection> in = mpctl::Inspect(o, q_name);
    ASSERT_TRUE(in.ok()) << in.status();
    EXPECT_EQ(in->info.verdict, Verdict::kInUse);
    EXPECT_EQ(in->info.creator, mpctl::Liveness::kAlive);
    EXPECT_EQ(in->info.kind, "queue MPMC");
    bool me = false;
    for (const auto& h : in->info.holders) me |= h.pid == static_cast<uint32_t>(getpid());
    EXPECT_TRUE(me);
    ASSERT_TRUE(in->ring.has_value()) << in->state_problem;
    EXPECT_EQ(in->ring->records_queued, 3u);
    EXPECT_TRUE(in->ring->problems.empty());

    in = mpctl::Inspect(o, l_name);
    ASSERT_TRUE(in.ok() && in->sync.has_value()) << in->state_problem;
    EXPECT_EQ(in->sync->lock.owner_tid, mp::liveness::CurrentTid());
    EXPECT_EQ(in->lock_owner, mpctl::Liveness::kAlive);
    ASSERT_TRUE(lock->Release().ok());
    EXPECT_TRUE(mp::Queue<int>::Unlink(q_name).ok());
    EXPECT_TRUE(mp::Lock::Unlink(l_name).ok());
  }
}

// --- the command ---------------------------------------------------------

struct CommandRun {
  int rc = -1;
  std::string out;
};

CommandRun Mpctl(const std::vector<std::string>& args) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  const std::string bin = std::string(srcdir ? srcdir : ".") + "/" +
                          (ws ? ws : "mp") + "/tools/mpctl/mpctl";
  int out[2];
  if (pipe(out) != 0) std::abort();
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    std::vector<char*> argv{const_cast<char*>(bin.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  close(out[1]);
  CommandRun r;
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof(buf))) > 0) r.out.append(buf, static_cast<size_t>(n));
  close(out[0]);
  const int status = mp_test::WaitOrKill(pid);
  r.rc = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST_F(MpctlTest, CommandJsonAndExitCodes) {
  CommandRun r = Mpctl({"ls", "--dir", dir_});
  EXPECT_EQ(r.rc, 0) << r.out;  // empty: nothing stale
  MakeQueue("q", RingMode::kSpsc);
  const pid_t child = Hold("q", true, [](char*, size_t, int ready) { Ready(ready); });
  WriteBytes("foreign", "hello");

  r = Mpctl({"ls", "--dir", dir_, "--json"});
  EXPECT_EQ(r.rc, 0) << r.out;  // in use and foreign: nothing stale
  mp_test::Json j;
  ASSERT_TRUE(mp_test::JsonParser(r.out).Parse(&j)) << r.out;
  ASSERT_EQ(j["segments"].a.size(), 2u);
  const mp_test::Json& f = j["segments"][0];
  EXPECT_EQ(f["name"].s, "foreign");
  EXPECT_EQ(f["verdict"].s, "foreign");
  EXPECT_EQ(f["creator_pid"].type, mp_test::Json::kNull);
  const mp_test::Json& q = j["segments"][1];
  EXPECT_EQ(q["name"].s, "q");
  EXPECT_EQ(q["verdict"].s, "in-use");
  EXPECT_EQ(q["kind"].s, "queue SPSC");
  EXPECT_EQ(q["creator_pid"].n, getpid());
  EXPECT_EQ(q["creator_alive"].s, "alive");
  ASSERT_EQ(q["holders"].a.size(), 1u);
  EXPECT_EQ(q["holders"][0]["pid"].n, child);
  EXPECT_TRUE(q["holders"][0]["fd"].b);

  r = Mpctl({"inspect", "q", "--dir", dir_, "--json"});
  EXPECT_EQ(r.rc, 0) << r.out;
  j = {};
  ASSERT_TRUE(mp_test::JsonParser(r.out).Parse(&j)) << r.out;
  EXPECT_EQ(j["queue"]["capacity"].n, 4096);
  EXPECT_EQ(j["queue"]["mode"].s, "SPSC");
  EXPECT_EQ(j["queue"]["records_queued"].n, 0);
  EXPECT_FALSE(j["queue"]["closed"].b);
  EXPECT_EQ(j["state_problem"].type, mp_test::Json::kNull);

  // rm refuses it while held (exit 1), and it stays.
  r = Mpctl({"rm", "q", "--dir", dir_});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(Exists("q"));
  Kill(child);
  r = Mpctl({"ls", "--dir", dir_});
  EXPECT_EQ(r.rc, 1) << r.out;  // stale now
  EXPECT_NE(r.out.find("stale"), std::string::npos) << r.out;
  r = Mpctl({"inspect", "q", "--dir", dir_});
  EXPECT_EQ(r.rc, 1) << r.out;
  r = Mpctl({"gc", "--dry-run", "--dir", dir_});
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("would remove " + dir_ + "/q"), std::string::npos) << r.out;
  EXPECT_TRUE(Exists("q"));
  r = Mpctl({"gc", "--dir", dir_});
  EXPECT_EQ(r.rc, 0);
  EXPECT_FALSE(Exists("q"));
  EXPECT_TRUE(Exists("foreign"));

  EXPECT_EQ(Mpctl({}).rc, 2);
  EXPECT_EQ(Mpctl({"frobnicate"}).rc, 2);
  EXPECT_EQ(Mpctl({"ls", "--bogus"}).rc, 2);
  EXPECT_EQ(Mpctl({"inspect"}).rc, 2);
  EXPECT_EQ(Mpctl({"inspect", "a/b", "--dir", dir_}).rc, 2);
  EXPECT_EQ(Mpctl({"rm", "--dir", dir_}).rc, 2);
  EXPECT_EQ(Mpctl({"ls", "--force"}).rc, 2);
  r = Mpctl({"--help"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("usage: mpctl"), std::string::npos);
}

}  // namespace
