//! Stand-ins for clouds that have no installable emulator, each written from the cloud's
//! published REST reference (each module says so in its first line).

pub mod azure;
pub mod codeartifact;
pub mod ecr_public;
pub mod gcp;
