//! Reading an embedded store whole, for `store copy` (see `store::copy`).
