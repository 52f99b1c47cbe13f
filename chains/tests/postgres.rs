//! postgres tests (being written).
