//! A transport that answers from an attempt's recorded responses (re-run).
