//! sql tests (being written).
