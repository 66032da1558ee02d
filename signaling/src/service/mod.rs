//! The case work with its I/O, and no HTTP: cases (every lifecycle command through one
//! function), papers and their uploads, recording playback, the engine's hooks for call
//! requests, bookings, and the typed views the API and the pushes show; `access` is where an
//! access (a recording played) is reported. It returns notices; the edges deliver them.

pub mod access;
pub mod accounts;
pub mod admin;
pub mod audit;
pub mod bookings;
pub mod calls;
pub mod cases;
pub mod export;
pub mod group_calls;
pub mod ledger;
pub mod papers;
pub mod playback;
pub mod review;
pub mod stats;
pub mod views;
