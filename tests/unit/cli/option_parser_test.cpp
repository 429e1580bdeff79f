#include "cli/option_parser.h"

#include <catch2/catch.hpp>

using vmm::cli::OptionParser;
using vmm::cli::parse_size;

namespace {

OptionParser memory_parser() {
    OptionParser parser;
    parser.add("size").add("shared").add("count").add("name").add_valueless("tty");
    return parser;
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("sizes: bare bytes and power-of-two suffixes", "[option_parser]") {
    CHECK(*parse_size("4096") == 4096);
    CHECK(*parse_size("512M") == 512ull << 20);
    CHECK(*parse_size("1G") == 1ull << 30);
    CHECK(*parse_size("2k") == 2048);
    CHECK(*parse_size("2K") == 2048);
    CHECK(*parse_size("3t") == 3ull << 40);
    CHECK(*parse_size("0") == 0);
}

TEST_CASE("sizes: overflow and garbage are rejected with the text", "[option_parser]") {
    auto overflow = parse_size("99999999999G");
    REQUIRE_FALSE(overflow);
    CHECK(contains(overflow.error().message(), "'99999999999G'"));
    auto too_many_digits = parse_size("99999999999999999999999");
    REQUIRE_FALSE(too_many_digits);
    CHECK(contains(too_many_digits.error().message(), "99999999999999999999999"));

    for (const char* bad : {"", "12Q", "x1G", "G", "1GB", "-1", "+1", " 1", "1 G", "1.5G"}) {
        auto r = parse_size(bad);
        INFO(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().message() == fmt::format("invalid size '{}'", bad));
    }
}

TEST_CASE("sizes: the largest representable value parses", "[option_parser]") {
    CHECK(*parse_size("18446744073709551615") == UINT64_MAX);
    CHECK(*parse_size("16777215T") == 16777215ull << 40);
    CHECK_FALSE(parse_size("16777216T"));  // exactly 2^64
}

TEST_CASE("typed getters read parsed values", "[option_parser]") {
    auto parser = memory_parser();
    REQUIRE(parser.parse("size=1G,shared=on,count=7,name=abc"));
    CHECK(**parser.get_size("size") == 1ull << 30);
    CHECK(**parser.get_bool("shared") == true);
    CHECK(**parser.get_u64("count") == 7);
    CHECK(**parser.get_string("name") == "abc");
    CHECK(parser.is_set("size"));
    CHECK_FALSE(parser.is_set("tty"));
}

TEST_CASE("absent keys read as nullopt", "[option_parser]") {
    auto parser = memory_parser();
    REQUIRE(parser.parse("name=x"));
    CHECK_FALSE(parser.get_size("size")->has_value());
    CHECK_FALSE(parser.get_bool("shared")->has_value());
    CHECK_FALSE(parser.get_u64("count")->has_value());
    CHECK_FALSE(parser.is_set("size"));
}

TEST_CASE("toggles: on/off/true/false, empty is false", "[option_parser]") {
    auto parser = memory_parser();
    struct Case {
        const char* text;
        bool expected;
    };
    for (Case c : {Case{"on", true}, Case{"true", true}, Case{"ON", true}, Case{"off", false},
                   Case{"false", false}, Case{"", false}}) {
        INFO(c.text);
        REQUIRE(parser.parse(fmt::format("shared={}", c.text)));
        CHECK(**parser.get_bool("shared") == c.expected);
    }
    REQUIRE(parser.parse("shared=maybe"));
    auto bad = parser.get_bool("shared");
    REQUIRE_FALSE(bad);
    CHECK(contains(bad.error().message(), "invalid toggle 'maybe'"));
}

TEST_CASE("numbers: strict decimal", "[option_parser]") {
    auto parser = memory_parser();
    for (const char* bad : {"", "1x", "-3", "0x10", "99999999999999999999"}) {
        INFO(bad);
        REQUIRE(parser.parse(fmt::format("count={}", bad)));
        auto r = parser.get_u64("count");
        REQUIRE_FALSE(r);
        CHECK(contains(r.error().message(), fmt::format("'{}'", bad)));
    }
}

TEST_CASE("commas inside brackets or quotes do not split", "[option_parser]") {
    auto parser = memory_parser();
    REQUIRE(parser.parse("name=[0@[1,2],3],size=2M"));
    CHECK(**parser.get_string("name") == "[0@[1,2],3]");
    CHECK(**parser.get_size("size") == 2ull << 20);

    REQUIRE(parser.parse("name=\"a,b=c\",count=1"));
    CHECK(**parser.get_string("name") == "a,b=c");  // the quotes are stripped
    CHECK(**parser.get_u64("count") == 1);
}

TEST_CASE("unbalanced brackets and quotes are errors", "[option_parser]") {
    auto parser = memory_parser();
    for (const char* bad : {"name=[1,2", "name=1]", "name=\"abc"}) {
        INFO(bad);
        auto r = parser.parse(bad);
        REQUIRE_FALSE(r);
        CHECK(contains(r.error().message(), bad));
    }
}

TEST_CASE("unknown and duplicate keys are errors", "[option_parser]") {
    auto parser = memory_parser();
    auto unknown = parser.parse("sise=1G");
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().message() == "unknown key 'sise'");

    auto duplicate = parser.parse("size=1G,shared=on,size=2G");
    REQUIRE_FALSE(duplicate);
    CHECK(duplicate.error().message() == "duplicate key 'size'");

    auto duplicate_valueless = parser.parse("tty,tty");
    REQUIRE_FALSE(duplicate_valueless);
    CHECK(duplicate_valueless.error().message() == "duplicate key 'tty'");
}

TEST_CASE("valueless keys and missing values", "[option_parser]") {
    auto parser = memory_parser();
    REQUIRE(parser.parse("tty"));
    CHECK(parser.is_set("tty"));

    auto with_value = parser.parse("tty=1");
    REQUIRE_FALSE(with_value);
    CHECK(with_value.error().message() == "key 'tty' takes no value");

    auto missing = parser.parse("size");
    REQUIRE_FALSE(missing);
    CHECK(contains(missing.error().message(), "key 'size' needs a value"));

    auto stray_comma = parser.parse("size=1G,,count=2");
    REQUIRE_FALSE(stray_comma);
    CHECK(contains(stray_comma.error().message(), "empty item"));
}

TEST_CASE("an empty value string sets nothing; reparsing resets", "[option_parser]") {
    auto parser = memory_parser();
    REQUIRE(parser.parse("size=1G,tty"));
    REQUIRE(parser.parse(""));
    CHECK_FALSE(parser.is_set("size"));
    CHECK_FALSE(parser.is_set("tty"));
    CHECK_FALSE(parser.get_size("size")->has_value());

    // A key with an explicitly empty value is set, and a size of "" is invalid.
    REQUIRE(parser.parse("size="));
    CHECK(parser.is_set("size"));
    auto empty_size = parser.get_size("size");
    REQUIRE_FALSE(empty_size);
    CHECK(empty_size.error().message() == "invalid size ''");
}

TEST_CASE("getters on unregistered or valueless keys are errors", "[option_parser]") {
    auto parser = memory_parser();
    REQUIRE(parser.parse("tty"));
    CHECK_FALSE(parser.get_string("nope"));
    CHECK_FALSE(parser.get_string("tty"));
    CHECK_FALSE(parser.is_set("nope"));
}

TEST_CASE("format_size picks the largest exact unit", "[option_parser]") {
    using vmm::cli::format_size;
    CHECK(format_size(16ull << 20) == "16M");
    CHECK(format_size(1ull << 40) == "1T");
    CHECK(format_size(4096) == "4K");
    CHECK(format_size(4097) == "4097");
    CHECK(format_size(0) == "0");
    CHECK(format_size(1536ull << 20) == "1536M");
}
