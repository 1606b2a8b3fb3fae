// A Map across simulated hosts (tools/mpi-netns; run by mpi_hosts_test.sh
// under mpirun): each task reports the host name, network and IPC namespace
// of the process that ran it. Rank 0 checks that every serving rank's host
// ran tasks, that each task ran in a local worker of a serving rank (not on
// rank 0's host unless a serving rank is there), and that the items came back
// in order; it prints where each item ran and "MPI_HOSTS_TEST rc=<n>".
#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "mp/pool/mpi/pool.h"

namespace {

std::string Link(const char* path) {
  char buf[256];
  const ssize_t n = readlink(path, buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
}

// "<item> <host> <net ns> <ipc ns>" of the process running it.
std::string WhereAmI(int item) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(item, " ", host, " ", Link("/proc/self/ns/net"), " ",
                      Link("/proc/self/ns/ipc"));
}

}  // namespace

int main(int argc, char** argv) {
  if (absl::Status s = mp::mpi::Init(argc, argv); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 2;
  }
  int failures = 0;
  auto check = [&](bool ok, const std::string& what) {
    if (!ok) {
      std::printf("FAIL: %s\n", what.c_str());
      ++failures;
    }
  };
  std::set<std::string> serving_hosts;
  for (const mp::mpi::RankInfo& r : mp::mpi::ServingRanks()) {
    std::printf("serving rank %d on host %s (pid %d)\n", r.rank, r.host.c_str(),
                static_cast<int>(r.pid));
    serving_hosts.insert(r.host);
  }
  char me[256] = {};
  gethostname(me, sizeof(me) - 1);
  std::printf("rank 0 on host %s\n", me);
  check(serving_hosts.size() >= 2, "serving ranks on at least 2 hosts");

  std::vector<int> items;
  for (int i = 0; i < 60; ++i) items.push_back(i);
  {
    mp::mpi::Pool pool(1);
    absl::StatusOr<std::vector<std::string>> out = pool.Map(WhereAmI, items, 1);
    check(out.ok(), absl::StrCat("Map: ", out.status().ToString()));
    if (out.ok()) {
      std::map<std::string, int> per_host;
      std::map<std::string, std::set<std::string>> ns_of_host;
      for (size_t i = 0; i < out->size(); ++i) {
        const std::string& line = (*out)[i];
        std::printf("item %s\n", line.c_str());
        char host[256] = {}, net[256] = {}, ipc[256] = {};
        int item = -1;
        std::sscanf(line.c_str(), "%d %255s %255s %255s", &item, host, net, ipc);
        check(item == static_cast<int>(i), absl::StrCat("item ", i, " in order"));
        check(serving_hosts.count(host) == 1,
              absl::StrCat("item ", i, " ran on a serving host (", host, ")"));
        ++per_host[host];
        ns_of_host[host].insert(absl::StrCat(net, " ", ipc));
      }
      for (const std::string& h : serving_hosts) {
        std::printf("host %s ran %d items\n", h.c_str(), per_host[h]);
        check(per_host[h] > 0, absl::StrCat("host ", h, " ran tasks"));
      }
      // Each host is its own net + IPC namespace pair; no two hosts share one.
      std::set<std::string> all;
      size_t total = 0;
      for (const auto& [h, s] : ns_of_host) {
        check(s.size() == 1, absl::StrCat("host ", h, " has one net/ipc namespace pair"));
        total += s.size();
        all.insert(s.begin(), s.end());
      }
      check(all.size() == total, "hosts have distinct namespaces");
    }
    pool.Close();
    check(pool.Join().ok(), "Join");
  }
  std::printf("MPI_HOSTS_TEST rc=%d\n", failures);
  std::fflush(stdout);
  return failures == 0 ? 0 : 1;
}
