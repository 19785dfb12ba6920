// idlepoolctl adopt: the verb that works on this host's files and systemd, not through idlepoold.
#pragma once

#include <string>
#include <vector>

namespace idlepool::ctl {

struct AdoptRequest {
  std::vector<std::string> pools;  // VERSION/NAME or NAME; empty: all
  bool apply = false;
  bool undo = false;
  std::string sync_version;  // --sync VERSION: run by the shared master before it starts or reloads
  std::string etc_php = "/etc/php";
};

// Prints the plan (or carries it out); returns idlepoolctl's exit code.
int run_adopt(const AdoptRequest& request);

// For `check`: the pools shared masters serve (not socket-activated), one line each saying how to adopt them.
std::vector<std::string> unadopted_pools(const std::string& etc_php = "/etc/php");

}  // namespace idlepool::ctl
