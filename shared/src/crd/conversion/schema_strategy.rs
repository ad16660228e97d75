//! Objects valid under a CRD version's OpenAPI schema, for the round-trip property tests.
