//! Rule preview: what a rule would do with an event, nothing saved.
