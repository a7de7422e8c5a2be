//! One tenant cannot hurt another: every cost a workspace or a
//! connector controls is bounded, and breaking a bound is a clear 4xx at save
//! time or a defined outcome at delivery time — never an abort, a hang or a
//! slowdown for another workspace. One module per kind of input.

mod api;
mod disk;
mod egress;
mod fairness;
mod limits;
mod routing;
mod sandbox;
mod secrets;
