#include <csignal>

#include "idlepool/kinds/service_kind.h"

namespace idlepool::kinds {
namespace {

// Any socket-activated service: idlepool knows nothing of its configuration, so it trusts the unit's stop signal to
// be the service's graceful one (SIGTERM for most servers), and refuses only a stop that cannot be graceful.
class GenericKind final : public ServiceKind {
 public:
  std::string_view name() const override { return "generic"; }
  bool claims(const ServiceUnit&) const override { return true; }
  Verdict assess(const AssessInput& in) const override {
    Verdict v;
    int sig = in.service->kill_signal;
    if (sig == SIGKILL) {
      std::string why = "the service stops with SIGKILL, which no service can finish its requests on";
      if (in.allow_abrupt_stop) {
        v.warnings.push_back(why + "; stopped anyway (allow-abrupt-stop)");
      } else {
        v.unsafe = "a stop would cut requests in flight: " + why + "; allow-abrupt-stop = yes accepts that";
      }
    } else if (sig != SIGTERM && sig != SIGQUIT && sig != SIGINT) {
      v.warnings.push_back("stops with signal " + std::to_string(sig) +
                           "; make sure the service finishes its "
                           "requests on it");
    }
    return v;
  }
};

}  // namespace

std::unique_ptr<ServiceKind> make_generic_kind() { return std::make_unique<GenericKind>(); }

Kinds::Kinds(sys::FileReader& files) : files_(files) {
  kinds_.push_back(make_php_fpm_kind(files));
  kinds_.push_back(make_generic_kind());
}

const ServiceKind& Kinds::of(const ServiceUnit& service) const {
  for (const auto& k : kinds_)
    if (k->claims(service)) return *k;
  return *kinds_.back();
}

}  // namespace idlepool::kinds
