/*
 * Fuzz target: the binary body of POST /chunk/report (u32 count, then 79-byte records: chunk id,
 * vuid, disk id, sizes, status, compacting), parsed as the route's parser does on the HTTP
 * thread. It is fuzz_routes.c fixed to that one route, with the whole input as the body; what a
 * decoded report does to the volumes is fuzzed by the cmd target (volume op 12).
 */
#define FUZZ_ROUTE "/chunk/report"
#define FUZZ_BODY_ONLY 1
#include "fuzz_routes.c"
