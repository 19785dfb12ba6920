// The status model (PoolStatus) as JSON: what idlepoolctl shows, as a table or as JSON, comes from here.
#pragma once

#include <nlohmann/json.hpp>

#include "pool_manager.h"

namespace idlepool::daemon {

nlohmann::json to_json(const PoolStatus& pool, MonoTime now);
nlohmann::json to_json(const PoolAudit& audit);

}  // namespace idlepool::daemon
