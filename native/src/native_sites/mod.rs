//! Native call sites (the lead merges the real module here).

pub mod java;
