// docs/openapi.yaml describes exactly the endpoints the server routes.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "api/routes.h"

#ifndef VMM_SOURCE_DIR
#error "VMM_SOURCE_DIR must be defined"
#endif

TEST_CASE("docs/openapi.yaml lists every endpoint with its method, and no others", "[api][docs]") {
    std::ifstream in(std::string(VMM_SOURCE_DIR) + "/docs/openapi.yaml");
    if (!in) {
        WARN("docs/openapi.yaml not found");
        return;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string yaml = buffer.str();
    auto endpoints = vmm::api::endpoint_list();
    for (const auto& e : endpoints) {
        std::string method(e.method);
        for (auto& c : method) c = static_cast<char>(c - 'A' + 'a');
        std::string entry = "\n  /" + std::string(e.name) + ":\n    " + method + ":\n";
        INFO(entry);
        CHECK(yaml.find(entry) != std::string::npos);
    }
    // Every path in the file is one the server routes.
    size_t paths = 0;
    for (size_t pos = yaml.find("\n  /"); pos != std::string::npos; pos = yaml.find("\n  /", pos + 1)) ++paths;
    CHECK(paths == endpoints.size());
}
