// The `zt` binary: parses the command line and hands over to the library.
#include <cstdio>
#include <exception>

#include "commands.hpp"
#include "zt/core/error.hpp"

namespace zt::cli {
namespace {
std::vector<std::string>& arguments() {
  static std::vector<std::string> a;
  return a;
}
}  // namespace
const std::vector<std::string>& raw_arguments() { return arguments(); }
void set_raw_arguments(int argc, char** argv) { arguments().assign(argv, argv + argc); }
}  // namespace zt::cli

int main(int argc, char** argv) {
  zt::cli::set_raw_arguments(argc, argv);
  CLI::App app{"zt: ZeRO training for transformer language models"};
  app.require_subcommand(0, 1);
  zt::cli::add_train_command(app);
  zt::cli::add_tokenize_command(app);
  zt::cli::add_estimate_command(app);
  zt::cli::add_launch_command(app);
  zt::cli::add_bench_command(app);
  zt::cli::add_convert_command(app);
  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) {
      std::fputs(app.help().c_str(), stdout);
      return 0;
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const zt::Error& e) {
    std::fprintf(stderr, "zt: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zt: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
