// Shared test fixture: one FpgaPipeline per test executable (PoCL compiles the kernel once, in
// seconds), a manual clock shared with the simulator, and helpers to compare the two.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>

#include "nicflow/hw/fpga_pipeline.h"

namespace nicflow::hw::testing {

/// Nanoseconds both backends read (tests advance it by hand).
inline uint64_t& FakeNow() {
  static uint64_t now = 1'000'000'000ull;
  return now;
}

/// Small geometry so images load fast in tests.
inline ImageGeometry TestGeometry() {
  ImageGeometry g;
  g.tcam_rows_per_table = 256;
  g.hash_buckets_per_table = 64;
  g.lpm_buckets_per_table = 64;
  g.action_slots = 4096;
  g.group_capacity = 256;
  g.maglev_words = 1u << 17;
  g.ct_buckets = 1u << 12;
  g.ct_connections = 1u << 13;
  return g;
}

/// The pipeline shared by every test of the executable (created on first use).
inline FpgaPipeline& SharedPipeline() {
  static std::unique_ptr<FpgaPipeline> p = [] {
    FpgaOptions o;
    o.geometry = TestGeometry();
    o.now_ns = [] { return FakeNow(); };
    auto created = FpgaPipeline::Create(o);
    if (!created.ok()) {
      ADD_FAILURE() << created.status();
      return std::unique_ptr<FpgaPipeline>();
    }
    return std::move(created).value();
  }();
  return *p;
}

}  // namespace nicflow::hw::testing
