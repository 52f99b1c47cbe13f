//! sql (being written).
