//! Moving an install from the embedded store to PostgreSQL (`switchboard store copy`).
