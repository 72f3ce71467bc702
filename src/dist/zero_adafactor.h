// ZeRO stages 1 and 2 with Adafactor. Adafactor's factored statistics are means over whole rows and columns of a
// matrix, so ZeroAdamW's flat cut at arbitrary element offsets would split them across ranks. Here whole parameters
// are assigned to ranks instead (largest first, each to the least-loaded rank), and each rank's parameters are laid
// out contiguously in its slot of the flat vector; the slot size is the largest rank's load, the rest of a slot is
// padding. The collectives are then ZeroAdamW's unchanged: the reduce-scatter hands each rank exactly the gradients
// of its own parameters, it keeps their fp32 master copy and Adafactor state and updates them, and the all-gather
// returns the updated parameters to every rank's model (zero_buffers.h: stages 1 and 2 as for ZeroAdamW).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dist/adafactor.h"
#include "dist/comm.h"
#include "dist/zero_buffers.h"

namespace dualign::dist {

// Whole-parameter assignment (pure, unit-tested).
struct OwnerLayout {
  int world_size = 1;
  int64_t shard = 0;                // slot size: the largest rank's load
  int64_t padded = 0;               // shard * world_size
  std::vector<int> owner;           // rank that updates each parameter
  std::vector<int64_t> offsets;     // start of each parameter in the flat vector
  std::vector<int64_t> load;        // elements owned by each rank
};
OwnerLayout make_owner_layout(const std::vector<int64_t>& numels, int world_size);

class ZeroAdafactor {
 public:
  ZeroAdafactor(Comm& comm, std::vector<at::Tensor> params, AdafactorConfig config, ZeroOptions options = {});
  ~ZeroAdafactor();
  ZeroAdafactor(const ZeroAdafactor&) = delete;
  ZeroAdafactor& operator=(const ZeroAdafactor&) = delete;

  // As ZeroAdamW::step: average, unscale, clip to the global norm, update this rank's parameters unless the norm is
  // not finite, all-gather. Returns the global gradient norm before clipping.
  double step(double max_grad_norm = 0, double unscale = 1);
  void zero_grad() { buffers_.zero_grad(); }
  void set_lr(double lr) { config_.lr = lr; }
  int64_t step_count() const { return step_; }
  int64_t reductions_during_backward() const { return buffers_.reductions_during_backward(); }
  const OwnerLayout& layout() const { return layout_; }
  // Bytes this rank holds between steps: fp32 master slot + Adafactor state of its parameters.
  int64_t state_bytes() const;

  // Checkpointing, at the same world size: "master" (this rank's slot), "step", and "<i>.<state>" for every
  // parameter i this rank owns (dist/adafactor.h's names).
  std::map<std::string, at::Tensor> shard_state() const;
  void load_shard_state(const std::map<std::string, at::Tensor>& state, const std::string& source);

 private:
  Comm& comm_;
  AdafactorConfig config_;
  OwnerLayout layout_;
  ZeroFlatBuffers buffers_;
  at::Tensor master_;  // this rank's slot, fp32
  std::map<size_t, AdafactorState> states_;  // by parameter index, the parameters this rank owns
  int64_t step_ = 0;
};

}  // namespace dualign::dist
