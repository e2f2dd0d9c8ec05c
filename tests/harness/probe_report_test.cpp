// The judgement and the words of `mnnvl-ar probe`, on made-up machines: what one GPU can and cannot show, a
// missing P2P link or a wrong all-reduce fails, inactive links and fabric trouble warn, and the report of a
// rank survives the trip to rank 0.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/commands/probe_report.h"

using namespace ar;

namespace {

ProbeGpu h100(int ordinal, const std::string& host = "node-a") {
  ProbeGpu g;
  g.host = host;
  g.device.ordinal = ordinal;
  g.device.device_count = 1;
  g.device.name = "NVIDIA H100 80GB HBM3";
  g.device.compute_capability = "9.0";
  g.device.sm_count = 132;
  g.device.memory_bytes = std::int64_t(80) << 30;
  g.device.driver = "580.159.04";
  g.device.cuda_driver = "13.0";
  g.device.cuda_runtime = "13.0";
  g.device.pci_bus_id = fmt::format("0000:{:02x}:00.0", 0x1b + ordinal);
  g.device.vmm = g.device.posix_handles = g.device.fabric_handles = g.device.multicast = true;
  g.nvml.loaded = true;
  g.nvml.driver_version = "580.159.04";
  for (int l = 0; l < 18; ++l) g.nvml.links.push_back(GpuLink{l, true, 4u, 26562u, "", 0u, 0u, 0u, 0u});
  g.nvml.fabric.queried = true;
  g.nvml.fabric.state = 3;
  g.nvml.fabric.status = 0;
  g.nvml.fabric.status_text = "Success";
  return g;
}

ProbeReport one_gpu_report() {
  ProbeReport r;
  r.launcher = "single";
  r.hosts = {"node-a"};
  r.gpus = {h100(0)};
  r.imex_host = "node-a";
  r.handles = "none exported: one process holds every rank";
  for (const char* strategy : {"oneshot", "twoshot"})
    r.allreduce.push_back({"GPU 0, 2 virtual ranks", strategy, 2, 4, 1024, "bf16", 8192, 0, ""});
  r.not_checked = {"P2P access, peer latency and bandwidth: need 2 or more GPUs in one process (1 visible)"};
  return r;
}

const ProbeCheck& check(const ProbeReport& r, const std::string& name) {
  for (const ProbeCheck& c : r.checks)
    if (c.name == name) return c;
  FAIL("no check named " << name);
  return r.checks.front();
}

}  // namespace

TEST_CASE("one GPU: what it shows passes, what it cannot show is said", "[cpu]") {
  ProbeReport r = one_gpu_report();
  CHECK(evaluate_probe(r));
  CHECK(check(r, "vmm").status == CheckStatus::kOk);
  CHECK(check(r, "nvlink").status == CheckStatus::kOk);
  CHECK(check(r, "p2p").status == CheckStatus::kNotChecked);
  CHECK(check(r, "peer-measurements").status == CheckStatus::kNotChecked);
  CHECK(check(r, "allreduce").status == CheckStatus::kOk);
  CHECK_THAT(check(r, "fabric").detail, Catch::Contains("cluster UUID zero (no NVLink domain)"));
  const std::string text = render_probe(r);
  CHECK_THAT(text, Catch::Contains("GPU 0 of node-a: NVIDIA H100 80GB HBM3, sm_9.0, 132 SMs, 80.0 GiB"));
  CHECK_THAT(text, Catch::Contains("multicast yes (never used)"));
  CHECK_THAT(text, Catch::Contains("IMEX channels on node-a: none (/dev/nvidia-caps-imex-channels does not exist)"));
  CHECK_THAT(text, Catch::Contains("not checked with this setup:\n  - P2P access"));
  CHECK_THAT(text, Catch::Contains("result: every check that could run passed"));
  const nlohmann::json j = nlohmann::json::parse(probe_json(r));
  CHECK(j.at("result") == "ok");
  CHECK(j.at("gpus").at(0).at("nvml").at("links").size() == 18);
  CHECK(j.at("peers").is_null());
}

TEST_CASE("a wrong all-reduce or a missing P2P path fails, with the reason", "[cpu]") {
  ProbeReport r = one_gpu_report();
  r.allreduce[1].mismatches = 3;
  CHECK_FALSE(evaluate_probe(r));
  CHECK_THAT(check(r, "allreduce").detail, Catch::Contains("twoshot W=2") && Catch::Contains("3 of 8192 elements"));
  CHECK_THAT(render_probe(r), Catch::Contains("result: FAILED (allreduce)"));

  ProbeReport two = one_gpu_report();
  two.gpus.push_back(h100(1));
  GpuPeers p;
  p.devices = {0, 1};
  p.access = {{false, true}, {false, false}};
  p.round_trip_us = p.oneway_gbps = p.twoway_gbps = {{std::nullopt, std::nullopt}, {std::nullopt, std::nullopt}};
  p.errors = {"GPU 0 and GPU 1: no P2P access both ways; latency and bandwidth not measured"};
  two.peers = p;
  two.peers_host = "node-a";
  CHECK_FALSE(evaluate_probe(two));
  CHECK(check(two, "p2p").status == CheckStatus::kFailed);
  CHECK_THAT(check(two, "p2p").detail, Catch::Contains("GPU 1 -> GPU 0"));
  CHECK_THAT(render_probe(two), Catch::Contains("NO"));
}

TEST_CASE("measured peers print as matrices", "[cpu]") {
  ProbeReport r = one_gpu_report();
  r.gpus.push_back(h100(1));
  GpuPeers p;
  p.devices = {0, 1};
  p.access = {{false, true}, {true, false}};
  p.round_trip_us = {{std::nullopt, 1.34}, {1.36, std::nullopt}};
  p.oneway_gbps = {{std::nullopt, 396.0}, {395.0, std::nullopt}};
  p.twoway_gbps = {{std::nullopt, 770.0}, {771.0, std::nullopt}};
  r.peers = p;
  r.peers_host = "node-a";
  CHECK(evaluate_probe(r));
  const std::string text = render_probe(r);
  CHECK_THAT(text, Catch::Contains("flag ping-pong round trip (us):") && Catch::Contains("1.34") &&
                       Catch::Contains("396") && Catch::Contains("771"));
  const nlohmann::json j = nlohmann::json::parse(probe_json(r));
  CHECK(j.at("peers").at("round_trip_us").at(0).at(1) == 1.34);
  CHECK(j.at("peers").at("round_trip_us").at(0).at(0).is_null());
}

TEST_CASE("inactive links, error counters and fabric trouble are warnings, not failures", "[cpu]") {
  ProbeReport r = one_gpu_report();
  r.gpus[0].nvml.links[3].active = false;
  r.gpus[0].nvml.links[5].crc_flit = 12;
  r.gpus[0].nvml.links[6].crc_data = 400;
  r.gpus[0].nvml.links[7].crc_data = 83;
  r.gpus[0].nvml.links[7].remote_pci_bus_id = "FFFFFFFF:FF:FF.0";
  r.gpus[0].nvml.fabric.health_mask = 1u;  // bandwidth degraded
  CHECK(evaluate_probe(r));
  CHECK(check(r, "nvlink").status == CheckStatus::kWarning);
  // One line per GPU with totals, however many links count errors.
  CHECK_THAT(check(r, "nvlink").detail,
             Catch::Contains("1 of 18 NVLinks inactive") &&
                 Catch::Contains("3 of 18 links count errors since the driver loaded (totals: 0 replay, 0 recovery, "
                                 "12 flit-CRC, 483 data-CRC)"));
  // A far end NVML cannot name is shown as unknown, not as its placeholder address.
  CHECK_THAT(render_probe(r), Catch::Contains("unknown") && !Catch::Contains("FFFFFFFF"));
  CHECK(check(r, "fabric").status == CheckStatus::kWarning);
  CHECK_THAT(check(r, "fabric").detail, Catch::Contains("bandwidth DEGRADED"));
}

TEST_CASE("no VMM or NVML, and a refused handle choice", "[cpu]") {
  ProbeReport r = one_gpu_report();
  r.gpus[0].device.vmm = false;
  r.gpus[0].nvml = GpuNvml{};
  r.gpus[0].nvml.error = "libnvidia-ml.so.1 could not be loaded (not found)";
  r.processes = 2;
  r.handles_failed = true;
  r.handles = "the ranks cannot share memory: they are on 2 hosts";
  r.allreduce.clear();
  r.allreduce_note = "the processes cannot share memory (see handles)";
  CHECK_FALSE(evaluate_probe(r));
  CHECK(check(r, "vmm").status == CheckStatus::kFailed);
  CHECK(check(r, "handles").status == CheckStatus::kFailed);
  CHECK(check(r, "nvlink").status == CheckStatus::kNotChecked);
  CHECK_THAT(check(r, "nvlink").detail, Catch::Contains("NVML not available"));
  CHECK(check(r, "allreduce").status == CheckStatus::kNotChecked);
  CHECK_THAT(render_probe(r), Catch::Contains("NVML: not available: libnvidia-ml.so.1"));
}

TEST_CASE("a rank's GPU report reaches rank 0 unchanged", "[cpu]") {
  ProbeGpu g = h100(0);
  g.ranks = {0, 1};
  g.nvml.fabric.cluster_uuid[15] = 0xAB;
  g.nvml.fabric.health_mask = 0xAAu;
  g.nvml.links[2].version.reset();
  const ProbeGpu back = probe_gpu_from_json(probe_gpu_to_json(g));
  CHECK(probe_gpu_to_json(back) == probe_gpu_to_json(g));
  CHECK(back.nvml.fabric.cluster_uuid[15] == 0xAB);
  CHECK_FALSE(back.nvml.links[2].version);
  CHECK_THROWS_WITH(probe_gpu_from_json("{}"), Catch::Contains("malformed GPU report"));
}

TEST_CASE("fabric facts in words", "[cpu]") {
  std::array<std::uint8_t, 16> uuid{};
  CHECK(uuid_text(uuid) == "00000000-0000-0000-0000-000000000000");
  uuid[0] = 0x12;
  uuid[15] = 0xef;
  CHECK(uuid_text(uuid) == "12000000-0000-0000-0000-0000000000ef");
  CHECK(fabric_health_text(0xAA) ==
        "bandwidth not degraded, no route recovery, routes healthy, no access-timeout recovery (mask 0xaa)");
  CHECK_THAT(fabric_health_text(0x10), Catch::StartsWith("route UNHEALTHY"));
  CHECK_THAT(fabric_health_text(0), Catch::StartsWith("not reported"));
}
