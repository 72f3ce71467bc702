// libFuzzer harness: dataset schema validation. The input does not go to HDF5's own parser (not dualign's code):
// it drives the construction of a well-formed HDF5 file with chosen root attributes, dataset names, dtypes, ranks
// and shapes (mostly the names and types the formats expect, so validation gets deep), which data::validate then
// checks against data/formats.h, reading every value. Rejections are exceptions; crashes are findings.
#include <fuzzer/FuzzedDataProvider.h>

#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "data/h5.h"
#include "data/schema.h"

namespace {

using dualign::h5::DType;

const char* const kFormats[] = {"images", "points", "preference_pairs", "labelled_samples", "samples", "prompts", "x"};
const char* const kNames[] = {"images", "labels", "points", "winner", "loser", "score_w", "score_l", "samples",
                              "desirable", "score", "class_id", "prompt", "prompt_index", "text_embedding", "prompt_embedding",
                              "prompt_pooled", "empty_prompt_embedding", "empty_prompt_pooled", "time_ids",
                              "time_ids_w", "time_ids_l", "winner_logvar", "winner_flip", "loser_flip_logvar",
                              "samples_logvar", "extra"};
const DType kTypes[] = {DType::f32, DType::f64, DType::f16, DType::u8, DType::i8, DType::i16, DType::i32, DType::i64,
                        DType::u16};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path =
      (std::filesystem::temp_directory_path() / ("dualign-fuzz-" + std::to_string(::getpid()) + ".h5")).string();
  FuzzedDataProvider in(data, size);
  try {
    {
      auto f = dualign::h5::File::create(path);
      if (in.ConsumeBool())
        f.set_attr("/", "format", in.ConsumeBool() ? std::string(in.PickValueInArray(kFormats))
                                                   : in.ConsumeRandomLengthString(16));
      if (in.ConsumeBool()) f.set_attr("/", "version", static_cast<int64_t>(in.ConsumeIntegralInRange(-1, 2)));
      const int datasets = in.ConsumeIntegralInRange(0, 6);
      for (int i = 0; i < datasets; ++i) {
        std::string name = in.ConsumeBool() ? in.PickValueInArray(kNames) : "x" + in.ConsumeRandomLengthString(8);
        if (name.find_first_of("/.") != std::string::npos || f.exists(name)) continue;
        if (in.ConsumeIntegralInRange(0, 9) == 0) {
          f.create_group(name);
          continue;
        }
        if (in.ConsumeIntegralInRange(0, 7) == 0) {
          std::vector<std::string> strings(in.ConsumeIntegralInRange(0, 4));
          for (auto& s : strings) s = in.ConsumeRandomLengthString(12);
          f.write_strings(name, strings);
          continue;
        }
        const DType dtype = in.PickValueInArray(kTypes);
        std::vector<int64_t> shape(in.ConsumeIntegralInRange(0, 5));
        int64_t count = 1;
        for (auto& d : shape) count *= (d = in.ConsumeIntegralInRange(0, 4));
        std::vector<uint8_t> bytes(static_cast<size_t>(count) * dualign::h5::dtype_size(dtype));
        for (auto& b : bytes) b = in.ConsumeIntegral<uint8_t>();  // NaNs and infinities included
        f.write(name, dtype, shape, bytes.data());
      }
    }
    const std::string expected = in.ConsumeBool() ? std::string(in.PickValueInArray(kFormats)) : "";
    (void)dualign::data::validate(path, expected, /*read_data=*/true);
  } catch (const std::exception&) {
  }
  return 0;
}
