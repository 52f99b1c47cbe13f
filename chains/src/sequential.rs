//! sequential (being written).
