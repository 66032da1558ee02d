//! The case work with its I/O, and no HTTP: cases (every lifecycle command through one
//! function), papers and their uploads, the engine's hooks for call requests, bookings, and
//! the typed views the API and the pushes show. It returns notices; the edges deliver them.

pub mod audit;
pub mod bookings;
pub mod calls;
pub mod cases;
pub mod export;
pub mod papers;
pub mod review;
pub mod views;
