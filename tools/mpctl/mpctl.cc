// mpctl: see mp's shared-memory segments, and clean up after a crash.
//
//   mpctl ls [--dir DIR] [--json]
//   mpctl inspect NAME [--dir DIR] [--json]
//   mpctl rm NAME... [--dir DIR] [--force]
//   mpctl gc [--dir DIR] [--dry-run] [--force] [--corrupt] [--foreign]
//            [--unknown-kinds] [--live-creators] [--messages]
//
// Exit codes: 0 ok; 1 ls / inspect found something stale or corrupt (or
// inspect's state has corrupt fields), or a removal was refused or failed;
// 2 usage error. What each verdict means: tools/mpctl/segments.h.

#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tools/mpctl/report.h"
#include "tools/mpctl/segments.h"

namespace {

constexpr char kUsage[] =
    R"(usage: mpctl COMMAND [options]

Shows and cleans up the shared-memory segments mp's named queues, locks,
events, semaphores and conditions live in (/dev/shm by default).

commands:
  ls [--json]            every file in the directory: name, kind and format
                         version, size, creator pid and start time, whether
                         the creator is alive (pid and start time, so a
                         recycled pid is not taken for it), the live
                         processes that map it (m) or hold it open (f), and
                         a verdict: in-use, stale (an mp segment nobody maps
                         or holds), foreign (not mp's), corrupt (mp's magic,
                         bad header), skipped (not a regular file)
  inspect NAME [--json]  the live state of one segment, from a private copy
                         (never mapped, never written): a queue's capacity,
                         mode, head/tail, records and bytes queued,
                         lost/corrupt counts, closed flag, sleepers, lock
                         holders and side owners and whether they live,
                         JoinableQueue task slots; a lock's owner and
                         owner-died state; an event's flag; a semaphore's
                         value; a condition's counts
  rm NAME...             removes segments no live process maps or holds
                         open (--force: even those)
  gc                     removes every stale mp segment of a kind this mpctl
                         knows; --dry-run says what would go; --corrupt and
                         --foreign add unheld corrupt and foreign files;
                         --unknown-kinds adds stale segments of kinds it
                         does not know (a newer mp's: they may be in use
                         without being mapped); a segment whose creator
                         still runs is kept unless --live-creators, a
                         queue's big message (kind message) unless
                         --messages;
                         --force adds those in use

options:
  --dir DIR              the directory to look in (default /dev/shm)
  --proc DIR             the /proc to read (default /proc; for tests)
  --json                 JSON instead of a table (ls, inspect)
  -h, --help             this text

exit codes: 0 ok; 1 something stale or corrupt found (ls, inspect) or a
removal refused or failed (rm, gc); 2 usage error.
)";

int Usage(const std::string& why) {
  std::fprintf(stderr, "mpctl: %s\n\n%s", why.c_str(), kUsage);
  return 2;
}

bool Bad(mpctl::Verdict v) {
  return v == mpctl::Verdict::kStale || v == mpctl::Verdict::kCorrupt;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return Usage("no command");
  for (const std::string& a : args) {
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  const std::string command = args[0];
  mpctl::Options options;
  options.exclude_pid = getpid();
  bool json = false, force = false, dry_run = false, corrupt = false,
       foreign = false, unknown_kinds = false, live_creators = false,
       messages = false;
  std::vector<std::string> names;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    if (a == "--dir") {
      if (!value(&options.dir)) return Usage("--dir needs a directory");
    } else if (a.rfind("--dir=", 0) == 0) {
      options.dir = a.substr(6);
    } else if (a == "--proc") {
      if (!value(&options.proc_root)) return Usage("--proc needs a directory");
    } else if (a.rfind("--proc=", 0) == 0) {
      options.proc_root = a.substr(7);
    } else if (a == "--json") {
      json = true;
    } else if (a == "--force") {
      force = true;
    } else if (a == "--dry-run") {
      dry_run = true;
    } else if (a == "--corrupt") {
      corrupt = true;
    } else if (a == "--foreign") {
      foreign = true;
    } else if (a == "--unknown-kinds") {
      unknown_kinds = true;
    } else if (a == "--live-creators") {
      live_creators = true;
    } else if (a == "--messages") {
      messages = true;
    } else if (a == "--") {
      names.insert(names.end(), args.begin() + i + 1, args.end());
      break;
    } else if (!a.empty() && a[0] == '-' && a != "-") {
      return Usage(absl::StrCat("unknown option ", a));
    } else {
      names.push_back(a);
    }
  }
  if (options.dir.empty()) return Usage("--dir is empty");
  // Options that a command does not take are usage errors, not ignored.
  auto only = [&](bool allowed_json, bool allowed_force, bool allowed_gc) {
    if (json && !allowed_json) return std::string("--json");
    if (force && !allowed_force) return std::string("--force");
    if ((dry_run || corrupt || foreign || unknown_kinds || live_creators ||
         messages) &&
        !allowed_gc) {
      return std::string(dry_run         ? "--dry-run"
                         : corrupt       ? "--corrupt"
                         : foreign       ? "--foreign"
                         : unknown_kinds ? "--unknown-kinds"
                         : live_creators ? "--live-creators"
                                         : "--messages");
    }
    return std::string();
  };

  if (command == "ls") {
    if (std::string o = only(true, false, false); !o.empty()) {
      return Usage(absl::StrCat("ls does not take ", o));
    }
    if (!names.empty()) return Usage("ls takes no names");
    absl::StatusOr<mpctl::Listing> l = mpctl::ListSegments(options);
    if (!l.ok()) {
      std::fprintf(stderr, "mpctl: %s\n", std::string(l.status().message()).c_str());
      return 1;
    }
    const std::string out =
        json ? mpctl::ListingJson(options, *l) : mpctl::ListingTable(options, *l);
    std::fputs(out.c_str(), stdout);
    for (const mpctl::SegmentInfo& s : l->segments) {
      if (Bad(s.verdict)) return 1;
    }
    return 0;
  }

  if (command == "inspect") {
    if (std::string o = only(true, false, false); !o.empty()) {
      return Usage(absl::StrCat("inspect does not take ", o));
    }
    if (names.size() != 1) return Usage("inspect takes one NAME");
    if (!mpctl::NormalizeName(names[0])) {
      return Usage(absl::StrCat("'", names[0], "' is not a segment name"));
    }
    absl::StatusOr<mpctl::Inspection> in = mpctl::Inspect(options, names[0]);
    if (!in.ok()) {
      std::fprintf(stderr, "mpctl: %s\n", std::string(in.status().message()).c_str());
      return 1;
    }
    const std::string out =
        json ? mpctl::InspectionJson(*in) : mpctl::InspectionText(*in);
    std::fputs(out.c_str(), stdout);
    const bool problems = (in->ring && !in->ring->problems.empty()) ||
                          (in->sync && !in->sync->problems.empty());
    return Bad(in->info.verdict) || problems ? 1 : 0;
  }

  if (command == "rm") {
    if (std::string o = only(false, true, false); !o.empty()) {
      return Usage(absl::StrCat("rm does not take ", o));
    }
    if (names.empty()) return Usage("rm needs at least one NAME");
    for (const std::string& n : names) {
      if (!mpctl::NormalizeName(n)) {
        return Usage(absl::StrCat("'", n, "' is not a segment name"));
      }
    }
    int rc = 0;
    for (const std::string& n : names) {
      absl::Status s = mpctl::RemoveSegment(options, n, force);
      if (s.ok()) {
        std::printf("removed %s\n", n.c_str());
      } else {
        std::fprintf(stderr, "mpctl: %s\n", std::string(s.message()).c_str());
        rc = 1;
      }
    }
    return rc;
  }

  if (command == "gc") {
    if (std::string o = only(false, true, true); !o.empty()) {
      return Usage(absl::StrCat("gc does not take ", o));
    }
    if (!names.empty()) return Usage("gc takes no names (rm does)");
    mpctl::GcOptions gc{dry_run,       force,         corrupt, foreign,
                        unknown_kinds, live_creators, messages};
    absl::StatusOr<mpctl::GcResult> r = mpctl::CollectGarbage(options, gc);
    if (!r.ok()) {
      std::fprintf(stderr, "mpctl: %s\n", std::string(r.status().message()).c_str());
      return 1;
    }
    for (const std::string& n : r->removed) {
      std::printf("%s %s/%s\n", dry_run ? "would remove" : "removed",
                  options.dir.c_str(), n.c_str());
    }
    for (const auto& [n, why] : r->failed) {
      std::fprintf(stderr, "mpctl: not removed: %s\n", why.c_str());
    }
    if (r->removed.empty() && r->failed.empty()) {
      std::printf("nothing to remove in %s\n", options.dir.c_str());
    }
    return r->failed.empty() ? 0 : 1;
  }

  return Usage(absl::StrCat("unknown command '", command, "'"));
}
