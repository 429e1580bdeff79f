#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include "balloon/auto/psi.h"

using namespace vmm::balloon::auto_balloon;

namespace {

std::string read_sample(const std::string& name) {
    std::string path = TEST_DATA_DIR;
    path += "/auto_balloon/psi/";
    path += name;
    std::ifstream in(path);
    REQUIRE(in.good());
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace

TEST_CASE("psi: a host under memory pressure, some and full", "[auto][psi]") {
    auto s = parse_psi(read_sample("memory_pressure.txt"));
    REQUIRE(s);
    CHECK(s->some.avg10 == Approx(23.41));
    CHECK(s->some.avg60 == Approx(11.87));
    CHECK(s->some.avg300 == Approx(3.12));
    CHECK(s->some.total_us == 48211396u);
    REQUIRE(s->full.has_value());
    CHECK(s->full->avg10 == Approx(9.05));
    CHECK(s->full->avg300 == Approx(1.20));
    CHECK(s->full->total_us == 19284457u);
}

TEST_CASE("psi: idle host, cgroup file and the extremes", "[auto][psi]") {
    auto idle = parse_psi(read_sample("memory_idle.txt"));
    REQUIRE(idle);
    CHECK(idle->some.avg10 == 0.0);
    CHECK(idle->full->total_us == 0u);

    auto cgroup = parse_psi(read_sample("cgroup_memory_pressure.txt"));
    REQUIRE(cgroup);
    CHECK(cgroup->some.avg60 == Approx(0.87));
    CHECK(cgroup->full->avg10 == Approx(0.71));

    auto saturated = parse_psi(read_sample("memory_saturated.txt"));
    REQUIRE(saturated);
    CHECK(saturated->some.avg10 == 100.0);
    CHECK(saturated->some.total_us == UINT64_MAX);
}

TEST_CASE("psi: a file without the full line", "[auto][psi]") {
    auto s = parse_psi(read_sample("cpu_no_full.txt"));
    REQUIRE(s);
    CHECK(s->some.avg10 == Approx(2.04));
    CHECK_FALSE(s->full.has_value());
}

TEST_CASE("psi: no trailing newline and full before some are accepted", "[auto][psi]") {
    auto s = parse_psi(
        "full avg10=1.00 avg60=2.00 avg300=3.00 total=4\nsome avg10=5.00 avg60=6.00 avg300=7.00 total=8");
    REQUIRE(s);
    CHECK(s->some.total_us == 8u);
    CHECK(s->full->avg300 == Approx(3.0));
}

TEST_CASE("psi: unknown keys a later kernel may add are skipped", "[auto][psi]") {
    auto s = parse_psi("some avg10=1.00 avg60=2.00 avg300=3.00 total=4 avg600=5.00\n");
    REQUIRE(s);
    CHECK(s->some.avg60 == Approx(2.0));
}

TEST_CASE("psi: malformed text is an error", "[auto][psi]") {
    const char* bad[] = {
        "",
        "\n",
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",  // no some
        "some avg10=0.00 avg60=0.00 avg300=0.00\n",          // no total
        "some avg10=0.00 avg60=0.00 total=0\n",              // no avg300
        "some avg10=x avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=-1.00 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=100.01 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=nan avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=inf avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=1.00 avg60=0.00 avg300=0.00 total=-5\n",
        "some avg10=1.00 avg60=0.00 avg300=0.00 total=99999999999999999999999\n",  // > 2^64
        "some avg10=1.00 avg60=0.00 avg300=0.00 total=12abc\n",
        "some avg10=1.00 avg10=2.00 avg60=0.00 avg300=0.00 total=0\n",  // key twice
        "some avg10=1.00 avg60=0.00 avg300=0.00 total=0\nsome avg10=1.00 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=1.00 avg60=0.00 avg300=0.00 total=0\nhalf avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=1.00 avg60 avg300=0.00 total=0\n",        // not key=value
        "some  avg10=1.00 avg60=0.00 avg300=0.00 total=0\n",  // empty token
        "some avg10=1.00 avg60=0.00 avg300=0.00 total=\n",
        "<html>not found</html>",
    };
    for (const char* text : bad) {
        INFO(text);
        auto s = parse_psi(text);
        CHECK_FALSE(s);
        if (!s) CHECK_FALSE(s.error().message().empty());
    }
}

TEST_CASE("psi: the cgroup v2 path of this process", "[auto][psi]") {
    auto hybrid =
        parse_cgroup_v2_path("12:memory:/user.slice\n1:name=systemd:/user.slice\n0::/user.slice/vmm.scope\n");
    REQUIRE(hybrid);
    CHECK(*hybrid == "/user.slice/vmm.scope");
    auto root = parse_cgroup_v2_path("0::/\n");
    REQUIRE(root);
    CHECK(*root == "/");
    CHECK_FALSE(parse_cgroup_v2_path("4:memory:/docker/abc\n1:cpu:/\n"));
    CHECK_FALSE(parse_cgroup_v2_path("0::relative\n"));
}

TEST_CASE("psi: finding the cgroup2 mount in mountinfo", "[auto][psi]") {
    const char* mountinfo =
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "30 22 0:26 / /sys/fs/cgroup ro,nosuid shared:4 - tmpfs tmpfs ro,mode=755\n"
        "35 30 0:30 / /sys/fs/cgroup/memory rw shared:9 - cgroup cgroup rw,memory\n"
        "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:5 - cgroup2 cgroup2 rw,nsdelegate\n";
    auto mount = find_cgroup2_mount(mountinfo);
    REQUIRE(mount);
    CHECK(mount->mount_point == "/sys/fs/cgroup/unified");
    CHECK(mount->root == "/");
    auto path = cgroup_memory_pressure_path(*mount, "/user.slice/vmm.scope");
    REQUIRE(path);
    CHECK(*path == "/sys/fs/cgroup/unified/user.slice/vmm.scope/memory.pressure");
    auto root_path = cgroup_memory_pressure_path(*mount, "/");
    REQUIRE(root_path);
    CHECK(*root_path == "/sys/fs/cgroup/unified/memory.pressure");
    CHECK_FALSE(find_cgroup2_mount("22 1 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n"));
    CHECK_FALSE(find_cgroup2_mount("garbage\n- cgroup2\n"));
}

TEST_CASE("psi: a mount of a cgroup subtree, escapes and paths outside it", "[auto][psi]") {
    auto mount = find_cgroup2_mount("40 22 0:27 /machine.slice /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n");
    REQUIRE(mount);
    CHECK(mount->mount_point == "/mnt/my cg");
    CHECK(mount->root == "/machine.slice");
    auto inside = cgroup_memory_pressure_path(*mount, "/machine.slice/vm1");
    REQUIRE(inside);
    CHECK(*inside == "/mnt/my cg/vm1/memory.pressure");
    CHECK_FALSE(cgroup_memory_pressure_path(*mount, "/user.slice"));
    CHECK_FALSE(cgroup_memory_pressure_path(*mount, "/machine.slicex/vm1"));
    CHECK_FALSE(cgroup_memory_pressure_path(*mount, "/machine.slice/../etc"));
}
