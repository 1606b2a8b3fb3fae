// tools/mpctl/report.h
// -----------------------------------------------------------------------------
// mpctl's output: a Listing or an Inspection as a human table or as JSON.
//
// JSON (one object, keys stable; numbers as JSON numbers, 64-bit counters
// included; absent facts as null):
//   ls:      {"dir", "processes_scanned", "unreadable_pids": [..],
//             "segments": [{"name", "path", "file_type", "size", "kind",
//               "kind_id", "version", "mp", "creator_pid", "creator_start",
//               "creator_alive" ("alive"|"dead"|"unknown"|null),
//               "data_bytes", "holders": [{"pid", "comm", "maps", "fd"}],
//               "verdict", "problem"}]}
//   inspect: the segment's object as in ls, plus "state_problem" and
//            "queue" or "sync" (see ReportInspection).
// Exit-code judgement lives with the command (mpctl.cc).

#ifndef MP_TOOLS_MPCTL_REPORT_H_
#define MP_TOOLS_MPCTL_REPORT_H_

#include <string>

#include "tools/mpctl/segments.h"

namespace mpctl {

// A JSON string literal for `s` (quotes included; control characters and
// bytes that are not valid UTF-8 escaped as \u00XX of the byte).
std::string JsonString(const std::string& s);

std::string ListingJson(const Options& options, const Listing& listing);
std::string ListingTable(const Options& options, const Listing& listing);

std::string InspectionJson(const Inspection& inspection);
std::string InspectionText(const Inspection& inspection);

}  // namespace mpctl

#endif  // MP_TOOLS_MPCTL_REPORT_H_
