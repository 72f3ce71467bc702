#include "ddo/da_checkpoint.h"

#include <signal.h>

#include <cstdlib>

#include "ckpt/checkpoint.h"
#include "ckpt/state.h"
#include "ckpt/store.h"
#include "dist/comm.h"
#include "util/error.h"
#include "util/log.h"

namespace dualign::ddo {

void save_da_checkpoint(const std::string& dir, Potential& f, const DaState& state, const std::string& config_yaml,
                        const std::string& signature, dist::Comm* comm, int keep_last) {
  if (!comm || comm->rank() == 0) {
    ckpt::CheckpointStore store(dir, std::max(1, keep_last));
    auto path = store.save(state.next_k, [&](ckpt::CheckpointWriter& w) {
      w.put_group("potential", ckpt::module_state(*f));
      w.put_tensor("da", "records", records_to_tensor(state.records));
      w.set_attr("da_next_k", state.next_k);
      w.set_attr("fit_rmse", state.last_fit.rmse);
      w.set_attr("fit_target_std", state.last_fit.target_std);
      w.set_attr("world_size", int64_t(comm ? comm->size() : 1));
      w.put_text("config_yaml", config_yaml);
      w.put_text("ddo_signature", signature);
    });
    log::info("checkpoint: {} (f_{})", path, state.next_k);
  }
  if (comm) comm->barrier();
}

std::optional<DaState> load_da_checkpoint(const std::string& dir, Potential& f, const std::string& signature) {
  namespace fs = std::filesystem;
  if (!fs::exists(fs::path(dir) / "latest")) return std::nullopt;
  const auto path = ckpt::CheckpointStore::resolve(dir);
  ckpt::CheckpointReader r(path);
  if (!r.has_text("ddo_signature") || !r.has_group("potential") || !r.has_group("da"))
    fail("checkpoint {}: not a ddo checkpoint (needs groups 'potential', 'da' and the text 'ddo_signature')", path);
  const auto saved = r.text("ddo_signature");
  if (saved != signature)
    fail("checkpoint {} was made by a different ddo run; resume needs the same settings (or run.resume=none / a new "
         "run.dir).\n  saved:   {}\n  current: {}",
         path, saved, signature);
  r.load_into("potential", ckpt::module_state(*f));
  DaState s;
  s.next_k = r.attr_int("da_next_k");
  s.records = records_from_tensor(r.tensor("da", "records"));
  s.last_fit = {r.attr_double("fit_rmse"), r.attr_double("fit_target_std")};
  DUALIGN_CHECK(int64_t(s.records.size()) == s.next_k - 1, "checkpoint {}: {} DA records for da_next_k = {}", path,
                s.records.size(), s.next_k);
  log::info("resumed DA from {} at k = {} (saved by {} ranks)", path, s.next_k, r.attr_int("world_size"));
  return s;
}

bool load_da_potential(const std::string& dir, int64_t k, Potential& f) {
  const auto path = ckpt::CheckpointStore(dir, 1).path(k);
  if (!std::filesystem::exists(path)) return false;
  ckpt::CheckpointReader r(path);
  r.load_into("potential", ckpt::module_state(*f));
  return true;
}

void maybe_inject_kill(int64_t k) {
  const char* v = std::getenv("DUALIGN_SIGKILL_AFTER_CHECKPOINT");
  if (v && std::atoll(v) == k) {
    log::warn("fault injection: SIGKILL after the DA checkpoint of k = {}", k);
    raise(SIGKILL);
  }
}

}  // namespace dualign::ddo
