//! Stand-ins for clouds that have no installable emulator, each following the cloud's
//! published REST reference (each module says so in its first line).

pub mod gcp;
