//! Connection settings and rule fields checked against the JSON Schemas a
//! connector declares.
