//! Writing records as they are, for `store copy` (see `store::copy`).
