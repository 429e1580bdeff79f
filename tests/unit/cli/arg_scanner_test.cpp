#include "cli/arg_scanner.h"

#include <array>

#include <catch2/catch.hpp>

using vmm::cli::Arity;
using vmm::cli::FlagSpec;
using vmm::cli::scan_args;

namespace {

// A table shaped like cloud-hypervisor's, including repeatable multi-value
// device flags that the real command line does not have yet.
constexpr std::array kSpecs = {
    FlagSpec{"kernel", 0, Arity::one, false, "PATH", ""},
    FlagSpec{"disk", 0, Arity::many, true, "path=...", ""},
    FlagSpec{"net", 0, Arity::many, true, "tap=...", ""},
    FlagSpec{"", 'v', Arity::none, true, "", ""},
    FlagSpec{"help", 'h', Arity::none, false, "", ""},
};

vmm::Result<vmm::cli::ScannedArgs> scan(std::vector<std::string> args) {
    return scan_args(args, kSpecs);
}

using Strings = std::vector<std::string>;

}  // namespace

TEST_CASE("multi-value flags take every following non-flag argument", "[arg_scanner]") {
    auto r = scan({"--disk", "path=a", "path=b", "--kernel", "k", "--disk", "path=c"});
    REQUIRE(r);
    CHECK(r->count("disk") == 2);
    CHECK(r->values("disk") == Strings{"path=a", "path=b", "path=c"});
    CHECK(r->values("kernel") == Strings{"k"});
}

TEST_CASE("multi-value flags accept the = form followed by more values", "[arg_scanner]") {
    auto r = scan({"--disk=path=a", "path=b", "-v"});
    REQUIRE(r);
    CHECK(r->values("disk") == Strings{"path=a", "path=b"});
    CHECK(r->count("v") == 1);
}

TEST_CASE("a one-value flag takes exactly one value", "[arg_scanner]") {
    auto r = scan({"--kernel", "a", "b"});
    REQUIRE_FALSE(r);
    CHECK(r.error().message() == "unexpected argument 'b'");
}

TEST_CASE("flags missing their value", "[arg_scanner]") {
    for (const Strings& args : {Strings{"--kernel"}, Strings{"--kernel", "-v"},
                                Strings{"--disk", "--kernel", "k"}}) {
        auto r = scan(args);
        REQUIRE_FALSE(r);
        CHECK(r.error().message() == fmt::format("option '{}' needs a value", args[0]));
    }
    // An explicitly empty value is a value.
    auto empty = scan({"--kernel", ""});
    REQUIRE(empty);
    CHECK(empty->values("kernel") == Strings{""});
    // A value that starts with '-' uses the = form.
    auto dash = scan({"--kernel=-odd"});
    REQUIRE(dash);
    CHECK(dash->values("kernel") == Strings{"-odd"});
}

TEST_CASE("short switches cluster and count", "[arg_scanner]") {
    auto r = scan({"-v", "-vv", "-hv"});
    REQUIRE(r);
    CHECK(r->count("v") == 4);
    CHECK(r->has("help"));
    CHECK_FALSE(r->has("kernel"));
    CHECK(r->values("help").empty());
}

TEST_CASE("scanner errors name the flag", "[arg_scanner]") {
    struct Case {
        Strings args;
        std::string message;
    };
    for (const Case& c : {
             Case{{"--foo"}, "unknown option '--foo'"},
             Case{{"--foo=1"}, "unknown option '--foo'"},
             Case{{"-x"}, "unknown option '-x'"},
             Case{{"-vx"}, "unknown option '-vx'"},
             Case{{"--help=yes"}, "option '--help' takes no value"},
             Case{{"--kernel", "a", "--kernel", "b"}, "option '--kernel' given more than once"},
             Case{{"-h", "--help"}, "option '--help' given more than once"},
             Case{{"stray"}, "unexpected argument 'stray'"},
             Case{{"-"}, "unexpected argument '-'"},
             Case{{"--"}, "unexpected argument '--'"},
         }) {
        auto r = scan(c.args);
        INFO(c.message);
        REQUIRE_FALSE(r);
        CHECK(r.error().message() == c.message);
    }
}
