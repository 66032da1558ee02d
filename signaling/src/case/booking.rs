//! Where a 预约 booking stands (the slots and their rules are `service::bookings`).

use super::lifecycle::text_enum;

text_enum! {
    /// Where a booking stands.
    pub enum BookingStatus {
        Booked = "booked",
        /// A call was made on it (its case is linked).
        Called = "called",
        Cancelled = "cancelled",
    }
}
