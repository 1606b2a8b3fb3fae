#include "tools/mpctl/report.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mpctl {
namespace {

using mp::queue_internal::RingModeName;
using mp::queue_internal::RingSnapshot;
using mp::sync_internal::SyncSnapshot;

std::string Bool(bool b) { return b ? "true" : "false"; }

std::string LivenessJson(Liveness l) {
  return JsonString(LivenessName(l));
}

std::string StringList(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ", ", JsonString(v[i]));
  }
  return out + "]";
}

std::string HoldersJson(const std::vector<Holder>& holders) {
  std::string out = "[";
  for (size_t i = 0; i < holders.size(); ++i) {
    const Holder& h = holders[i];
    absl::StrAppend(&out, i == 0 ? "" : ", ", "{\"pid\": ", h.pid,
                    ", \"comm\": ", JsonString(h.comm),
                    ", \"maps\": ", Bool(h.maps), ", \"fd\": ", Bool(h.open_fd),
                    "}");
  }
  return out + "]";
}

// The members of a segment's object, without braces.
std::string SegmentMembers(const SegmentInfo& s) {
  std::string out = absl::StrCat(
      "\"name\": ", JsonString(s.name), ", \"path\": ", JsonString(s.path),
      ", \"file_type\": ", JsonString(s.file_type), ", \"size\": ", s.file_size,
      ", \"mp\": ", Bool(s.has_magic), ", \"kind\": ", JsonString(s.kind));
  if (s.header) {
    const mp::SegmentHeader& h = *s.header;
    absl::StrAppend(&out, ", \"kind_id\": ", h.kind, ", \"version\": ",
                    h.version, ", \"flags\": ", h.flags,
                    ", \"creator_pid\": ", h.creator_pid,
                    ", \"creator_start\": ", h.creator_start,
                    ", \"creator_alive\": ", LivenessJson(s.creator),
                    ", \"data_bytes\": ", h.data_bytes,
                    ", \"type_tag\": ", JsonString(absl::StrCat(absl::Hex(h.type_tag))),
                    ", \"type_size\": ", h.type_size);
  } else {
    absl::StrAppend(&out,
                    ", \"kind_id\": null, \"version\": null, \"flags\": null, "
                    "\"creator_pid\": null, \"creator_start\": null, "
                    "\"creator_alive\": null, \"data_bytes\": null, "
                    "\"type_tag\": null, \"type_size\": null");
  }
  absl::StrAppend(&out, ", \"holders\": ", HoldersJson(s.holders),
                  ", \"verdict\": ", JsonString(VerdictName(s.verdict)),
                  ", \"problem\": ",
                  s.problem.empty() ? "null" : JsonString(s.problem));
  return out;
}

std::string HoldersText(const std::vector<Holder>& holders) {
  if (holders.empty()) return "-";
  std::string out;
  for (const Holder& h : holders) {
    absl::StrAppend(&out, out.empty() ? "" : ",", h.pid, "(", h.comm, ":",
                    h.maps ? "m" : "", h.open_fd ? "f" : "", ")");
  }
  return out;
}

std::string CreatorText(const SegmentInfo& s) {
  if (!s.header) return "-";
  return absl::StrCat(s.header->creator_pid, "@", s.header->creator_start);
}

std::string TidText(uint32_t tid, Liveness l) {
  if (tid == 0) return "free";
  return absl::StrCat("tid ", tid, " (", LivenessName(l), ")");
}

std::string OwnerText(const mp::queue_internal::OwnerSnapshot& o, Liveness l) {
  if (o.pid == 0) return "none";
  return absl::StrCat("pid ", o.pid, " (", LivenessName(l), ")");
}

std::string RingJson(const Inspection& in) {
  const RingSnapshot& r = *in.ring;
  std::string slots = "[";
  for (size_t i = 0; i < r.task_slots.size(); ++i) {
    const auto& t = r.task_slots[i];
    absl::StrAppend(&slots, i == 0 ? "" : ", ", "{\"slot\": ", t.index,
                    ", \"owner_pid\": ", t.owner.pid, ", \"owner_alive\": ",
                    LivenessJson(in.task_slot_owners[i]),
                    ", \"taken\": ", t.taken, ", \"done\": ", t.done,
                    ", \"abandoned_before\": ", t.abandoned_before, "}");
  }
  slots += "]";
  auto lock = [](const mp::queue_internal::PidLockSnapshot& l, Liveness v) {
    return absl::StrCat("{\"holder_tid\": ", l.holder_tid,
                        ", \"holder_alive\": ",
                        l.holder_tid == 0 ? "null" : LivenessJson(v),
                        ", \"waiters\": ", Bool(l.waiters), "}");
  };
  auto owner = [](const mp::queue_internal::OwnerSnapshot& o, Liveness v) {
    return absl::StrCat("{\"pid\": ", o.pid, ", \"alive\": ",
                        o.pid == 0 ? "null" : LivenessJson(v), "}");
  };
  return absl::StrCat(
      "{\"mode\": ", JsonString(RingModeName(r.mode)),
      ", \"capacity\": ", r.capacity, ", \"capacity_valid\": ",
      Bool(r.capacity_valid), ", \"head\": ", r.head, ", \"tail\": ", r.tail,
      ", \"indices_valid\": ", Bool(r.indices_valid),
      ", \"bytes_queued\": ", r.bytes_used,
      ", \"records_queued\": ", r.records_queued,
      ", \"records_put\": ", r.records_in, ", \"records_taken\": ",
      r.records_out, ", \"lost_records\": ", r.lost,
      ", \"corrupt_records\": ", r.corrupt, ", \"counts_valid\": ",
      Bool(r.counts_valid), ", \"closed\": ", Bool(r.closed),
      ", \"consumers_waiting\": ", Bool(r.consumers_waiting),
      ", \"producers_waiting\": ", Bool(r.producers_waiting),
      ", \"joiners_waiting\": ", Bool(r.joiners_waiting),
      ", \"producer_lock\": ", lock(r.producer_lock, in.producer_lock_holder),
      ", \"consumer_lock\": ", lock(r.consumer_lock, in.consumer_lock_holder),
      ", \"spsc_producer\": ", owner(r.spsc_producer, in.spsc_producer),
      ", \"spsc_consumer\": ", owner(r.spsc_consumer, in.spsc_consumer),
      ", \"tasks_done_unattributed\": ", r.tasks_done_unattributed,
      ", \"task_slots\": ", slots, ", \"problems\": ", StringList(r.problems),
      "}");
}

std::string SyncJson(const Inspection& in) {
  const SyncSnapshot& s = *in.sync;
  std::string out = absl::StrCat(
      "{\"type\": ", JsonString(mp::sync_internal::SyncTypeName(s.type)));
  switch (s.type) {
    case SyncSnapshot::Type::kLock:
    case SyncSnapshot::Type::kRLock:
    case SyncSnapshot::Type::kCondition:
      absl::StrAppend(
          &out, ", \"owner_tid\": ", s.lock.owner_tid, ", \"owner_alive\": ",
          s.lock.owner_tid == 0 ? "null" : LivenessJson(in.lock_owner),
          ", \"owner_died_pending\": ", Bool(s.lock.owner_died),
          ", \"taken_over\": ", Bool(s.lock.taken_over),
          ", \"waiters\": ", Bool(s.lock.waiters));
      if (s.type != SyncSnapshot::Type::kLock) {
        absl::StrAppend(&out, ", \"count\": ", s.rlock_count);
      }
      if (s.type == SyncSnapshot::Type::kCondition) {
        absl::StrAppend(&out, ", \"seq\": ", s.condition_seq,
                        ", \"sleepers\": ", s.condition_sleepers,
                        ", \"waiting\": ", s.condition_waiting,
                        ", \"signals\": ", s.condition_signals);
      }
      break;
    case SyncSnapshot::Type::kEvent:
      absl::StrAppend(&out, ", \"set\": ", Bool(s.event_set),
                      ", \"waiters\": ", Bool(s.event_waiters));
      break;
    case SyncSnapshot::Type::kSemaphore:
      absl::StrAppend(&out, ", \"value\": ", s.semaphore_value,
                      ", \"waiters\": ", s.semaphore_waiters,
                      ", \"bounded\": ", Bool(s.semaphore_bounded),
                      ", \"bound\": ", s.semaphore_bound);
      break;
  }
  absl::StrAppend(&out, ", \"problems\": ", StringList(s.problems), "}");
  return out;
}

}  // namespace

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string ListingJson(const Options& options, const Listing& listing) {
  std::string out = absl::StrCat(
      "{\"dir\": ", JsonString(options.dir),
      ", \"processes_scanned\": ", listing.processes, ", \"unreadable_pids\": [");
  for (size_t i = 0; i < listing.unreadable_pids.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ", ", listing.unreadable_pids[i]);
  }
  out += "], \"segments\": [";
  for (size_t i = 0; i < listing.segments.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "\n  {" : ",\n  {",
                    SegmentMembers(listing.segments[i]), "}");
  }
  out += "]}\n";
  return out;
}

std::string ListingTable(const Options& options, const Listing& listing) {
  std::string out = absl::StrFormat("%-28s %-12s %3s %10s %-20s %-7s %-8s %s\n",
                                    "NAME", "KIND", "VER", "SIZE",
                                    "CREATOR(pid@start)", "ALIVE", "VERDICT",
                                    "HOLDERS / PROBLEM");
  for (const SegmentInfo& s : listing.segments) {
    std::string last = HoldersText(s.holders);
    if (!s.problem.empty()) {
      last = s.holders.empty() ? s.problem : absl::StrCat(last, "; ", s.problem);
    }
    absl::StrAppend(
        &out, absl::StrFormat(
                  "%-28s %-12s %3s %10d %-20s %-7s %-8s %s\n", s.name, s.kind,
                  s.header ? absl::StrCat(s.header->version) : "-",
                  s.file_size, CreatorText(s),
                  s.header ? LivenessName(s.creator) : "-",
                  VerdictName(s.verdict), last));
  }
  absl::StrAppend(&out, listing.segments.size(), " entries in ", options.dir,
                  "; ", listing.processes, " processes scanned");
  if (!listing.unreadable_pids.empty()) {
    absl::StrAppend(&out, "; ", listing.unreadable_pids.size(),
                    " could not be read (holders among them are not shown):");
    for (uint32_t pid : listing.unreadable_pids) absl::StrAppend(&out, " ", pid);
  }
  out += "\n";
  return out;
}

std::string InspectionJson(const Inspection& in) {
  std::string out = absl::StrCat("{", SegmentMembers(in.info),
                                 ", \"state_problem\": ",
                                 in.state_problem.empty()
                                     ? "null"
                                     : JsonString(in.state_problem));
  if (in.ring) absl::StrAppend(&out, ",\n \"queue\": ", RingJson(in));
  if (in.sync) absl::StrAppend(&out, ",\n \"sync\": ", SyncJson(in));
  out += "}\n";
  return out;
}

std::string InspectionText(const Inspection& in) {
  const SegmentInfo& s = in.info;
  std::string out = absl::StrCat(s.path, "\n");
  auto line = [&out](const std::string& k, const std::string& v) {
    absl::StrAppend(&out, absl::StrFormat("  %-20s %s\n", k, v));
  };
  line("verdict", VerdictName(s.verdict));
  if (!s.problem.empty()) line("problem", s.problem);
  line("kind", s.kind);
  line("file", absl::StrCat(s.file_type, ", ", s.file_size, " bytes"));
  if (s.header) {
    line("version", absl::StrCat(s.header->version));
    line("creator", absl::StrCat("pid ", s.header->creator_pid, " started at ",
                                 s.header->creator_start, " (",
                                 LivenessName(s.creator), ")"));
  }
  line("holders", HoldersText(s.holders));
  if (!in.state_problem.empty()) line("state", in.state_problem);
  if (in.ring) {
    const RingSnapshot& r = *in.ring;
    line("mode", RingModeName(r.mode));
    line("capacity", absl::StrCat(r.capacity, r.capacity_valid ? "" : " (CORRUPT)"));
    line("head / tail", absl::StrCat(r.head, " / ", r.tail,
                                     r.indices_valid ? "" : " (CORRUPT)"));
    line("queued", absl::StrCat(r.records_queued, " records, ", r.bytes_used,
                                " bytes", r.counts_valid ? "" : " (CORRUPT counts)"));
    line("put / taken", absl::StrCat(r.records_in, " / ", r.records_out));
    line("lost / corrupt", absl::StrCat(r.lost, " / ", r.corrupt));
    line("closed", r.closed ? "yes" : "no");
    line("waiters", absl::StrCat("consumers ", r.consumers_waiting ? "yes" : "no",
                                 ", producers ", r.producers_waiting ? "yes" : "no",
                                 ", joiners ", r.joiners_waiting ? "yes" : "no"));
    if (r.mode == 2) {
      line("producer lock", TidText(r.producer_lock.holder_tid, in.producer_lock_holder));
      line("consumer lock", TidText(r.consumer_lock.holder_tid, in.consumer_lock_holder));
    } else {
      line("producer", OwnerText(r.spsc_producer, in.spsc_producer));
      line("consumer", OwnerText(r.spsc_consumer, in.spsc_consumer));
    }
    if (!r.task_slots.empty() || r.tasks_done_unattributed != 0) {
      for (size_t i = 0; i < r.task_slots.size(); ++i) {
        const auto& t = r.task_slots[i];
        line(absl::StrCat("task slot ", t.index),
             absl::StrCat("pid ", t.owner.pid, " (",
                          LivenessName(in.task_slot_owners[i]), "): taken ",
                          t.taken, ", done ", t.done, ", abandoned before ",
                          t.abandoned_before));
      }
      line("task_done, no slot", absl::StrCat(r.tasks_done_unattributed));
    }
    for (const std::string& p : r.problems) line("CORRUPT", p);
  }
  if (in.sync) {
    const SyncSnapshot& y = *in.sync;
    switch (y.type) {
      case SyncSnapshot::Type::kLock:
      case SyncSnapshot::Type::kRLock:
      case SyncSnapshot::Type::kCondition:
        line("owner", TidText(y.lock.owner_tid, in.lock_owner));
        line("owner died pending", y.lock.owner_died ? "yes" : "no");
        if (y.lock.taken_over) line("taken over", "yes (from a dead owner)");
        line("waiters", y.lock.waiters ? "yes" : "no");
        if (y.type != SyncSnapshot::Type::kLock) {
          line("count", absl::StrCat(y.rlock_count));
        }
        if (y.type == SyncSnapshot::Type::kCondition) {
          line("waiting / signals", absl::StrCat(y.condition_waiting, " / ",
                                                 y.condition_signals));
          line("sleepers", absl::StrCat(y.condition_sleepers));
        }
        break;
      case SyncSnapshot::Type::kEvent:
        line("set", y.event_set ? "yes" : "no");
        line("waiters", y.event_waiters ? "yes" : "no");
        break;
      case SyncSnapshot::Type::kSemaphore:
        line("value", absl::StrCat(y.semaphore_value));
        line("waiters", absl::StrCat(y.semaphore_waiters));
        line("bound", y.semaphore_bounded ? absl::StrCat(y.semaphore_bound)
                                          : std::string("none"));
        break;
    }
    for (const std::string& p : y.problems) line("CORRUPT", p);
  }
  return out;
}

}  // namespace mpctl
