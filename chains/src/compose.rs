//! compose (being written).
