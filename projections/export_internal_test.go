package projections

// DocumentFormat is the first byte of the documents this version writes, for
// the external tests that read stored rows.
const DocumentFormat = docBinaryV3
