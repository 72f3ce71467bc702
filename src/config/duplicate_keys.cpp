#include "config/duplicate_keys.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <map>
#include <sstream>
#include <vector>

#include "util/error.h"

namespace dualign::config {
namespace {

class DuplicateKeyFinder : public YAML::EventHandler {
 public:
  DuplicateKeyFinder(std::string source, bool lines) : source_(std::move(source)), lines_(lines) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark, "~", false); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark, "*alias", false); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string& value) override {
    node(mark, value, true);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(mark, "", false);
    frames_.emplace_back();
  }
  void OnSequenceEnd() override { frames_.pop_back(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(mark, "", false);
    frames_.emplace_back();
    frames_.back().is_map = true;
  }
  void OnMapEnd() override { frames_.pop_back(); }

 private:
  struct Frame {
    bool is_map = false;
    bool expect_key = true;
    std::map<std::string, int> key_lines;  // scalar key -> 1-based line of its first occurrence
  };

  // Any node that starts inside the current frame: in a mapping, nodes alternate key, value.
  void node(const YAML::Mark& mark, const std::string& scalar, bool is_scalar) {
    if (frames_.empty() || !frames_.back().is_map) return;
    Frame& f = frames_.back();
    const bool is_key = f.expect_key;
    f.expect_key = !f.expect_key;
    if (!is_key || !is_scalar) return;
    auto [it, inserted] = f.key_lines.emplace(scalar, mark.line + 1);
    if (!inserted)
      fail("{}: duplicate key '{}'{}; YAML would silently keep only the last one: remove or rename one of them",
           lines_ ? fmt::format("{}:{}", source_, mark.line + 1) : source_, scalar,
           lines_ ? fmt::format(" (first at line {})", it->second) : "");
  }

  std::string source_;
  bool lines_;
  std::vector<Frame> frames_;
};

}  // namespace

void check_duplicate_keys(const std::string& text, const std::string& source, bool lines) {
  std::istringstream in(text);
  DuplicateKeyFinder finder(source, lines);
  try {
    // The first document only: that is what YAML::Load reads. (Looping over documents also hangs yaml-cpp 0.7
    // on text that starts with a ',': it returns a new empty document forever. Found by tests/fuzz.)
    YAML::Parser parser(in);
    parser.HandleNextDocument(finder);
  } catch (const YAML::Exception&) {
    // Syntax errors: the loader reports them with its own message.
  }
}

}  // namespace dualign::config
