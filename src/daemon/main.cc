// batchd: the batch orchestrator daemon.
#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include <iostream>

#include <CLI/CLI.hpp>

#include "batchd/version.h"

int main(int argc, char** argv) {
  CLI::App app{"batchd: a batch orchestrator daemon"};
  app.set_version_flag("--version", std::string("batchd ") + batchd::kVersion);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return 0;
}
