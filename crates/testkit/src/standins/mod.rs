//! Stand-ins for cloud APIs that have no installable emulator, each written from the cloud's
//! published REST reference (see the first line of each module).

pub mod azure;
