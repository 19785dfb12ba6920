#include "adopt.h"

#include <unistd.h>

#include <iostream>

#include "idlepool/adopt/apply.h"
#include "idlepool/adopt/plan.h"

namespace idlepool::ctl {

int run_adopt(const AdoptRequest& request) {
  constexpr int kOk = 0, kFailure = 1;
  adopt::Environment env = adopt::read_environment();
  if ((request.apply || request.undo || !request.sync_version.empty()) && ::geteuid() != 0) {
    std::cerr << "idlepoolctl adopt: --apply, --undo and --sync change system files and units: run as root\n";
    return kFailure;
  }
  if (!request.sync_version.empty()) {
    auto r = adopt::sync(request.sync_version, env, std::cerr);
    if (!r) std::cerr << "idlepoolctl adopt --sync " << request.sync_version << ": " << r.error().message << "\n";
    return kOk;  // never the reason the shared master does not start
  }
  if (request.undo) {
    auto r = adopt::undo(request.pools, env, std::cout);
    if (!r) {
      std::cerr << "idlepoolctl adopt --undo: " << r.error().message << "\n";
      return kFailure;
    }
    return kOk;
  }
  auto installations = adopt::read_installations(request.etc_php);
  if (!installations) {
    std::cerr << "idlepoolctl adopt: " << installations.error().message << "\n";
    return kFailure;
  }
  if (installations->empty()) {
    std::cerr << "idlepoolctl adopt: no php-fpm configuration in " << request.etc_php << "/*/fpm/php-fpm.conf\n";
    return kFailure;
  }
  adopt::Plan plan = adopt::make_plan(*installations, request.pools, env);
  bool matched = !plan.pools.empty();
  if (!request.pools.empty() && !matched) {
    std::cerr << "idlepoolctl adopt: no pool matches";
    for (const auto& p : request.pools) std::cerr << " " << p;
    std::cerr << "\n";
    return 4;
  }
  std::cout << adopt::render_plan(plan, request.apply);
  if (!request.apply || plan.adoptable() == 0) return kOk;
  auto r = adopt::apply_plan(plan, std::cout);
  if (!r) {
    std::cerr << "idlepoolctl adopt --apply: " << r.error().message << "\n";
    return kFailure;
  }
  return kOk;
}

std::vector<std::string> unadopted_pools(const std::string& etc_php) {
  std::vector<std::string> out;
  auto installations = adopt::read_installations(etc_php);
  if (!installations) return {"cannot read php-fpm's configuration: " + installations.error().message};
  for (const auto& inst : *installations)
    for (const auto& pool : inst.config.pools) {
      if (pool.name == "idlepool-placeholder") continue;
      out.push_back(inst.version + "/" + pool.name + " (" + pool.file + "): served by php" + inst.version +
                    "-fpm.service, not socket-activated; see `idlepoolctl adopt " + inst.version + "/" + pool.name +
                    "`");
    }
  return out;
}

}  // namespace idlepool::ctl
