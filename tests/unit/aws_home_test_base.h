// A test fixture base for code that reads the AWS environment: a private
// temporary HOME (for ~/.aws/config and ~/.aws/credentials) and a map of
// environment variables, handed to the code under test as an AwsEnvironment.
// Single-threaded, like the tests that use it.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "cloudmerge/aws/credentials.h"

namespace cloudmerge {

class AwsHomeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cm-aws-home-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    home_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(home_); }

  AwsEnvironment Env() {
    AwsEnvironment env;
    env.getenv = [this](const std::string& name) {
      auto it = vars_.find(name);
      return it == vars_.end() ? std::string() : it->second;
    };
    env.home = home_;
    return env;
  }
  // Writes HOME/relative (e.g. ".aws/config"), creating its folders.
  void Write(const std::string& relative, const std::string& text) {
    std::filesystem::path p = std::filesystem::path(home_) / relative;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }

  std::map<std::string, std::string> vars_;
  std::string home_;
};

}  // namespace cloudmerge
