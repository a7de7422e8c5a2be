//! Re-running an attempt on another version against its recorded responses, and previewing a rule.
