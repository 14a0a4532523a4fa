//! Test helpers of the cluster crate (the app's tests use `nats` too).
pub mod nats;
